// Package smtptest runs a real SMTP server (emersion/go-smtp) in-process
// for tests: it offers STARTTLS with a certificate the test trusts, and
// keeps every message it is given, so a test reads the mail a gateway
// sent.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one mail the server accepted.
type Message struct {
	From    string
	To      []string
	Subject string
	Body    string
	// TLS says the message came over an encrypted connection.
	TLS bool
}

// Server is a running SMTP server.
type Server struct {
	// URL is smtp://127.0.0.1:<port> (STARTTLS).
	URL string
	// ClientTLS trusts the server's certificate.
	ClientTLS *tls.Config

	srv     *smtp.Server
	mu      sync.Mutex
	got     []Message
	arrived chan struct{}
}

// New starts a server, closed when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	// httptest's certificate is valid for 127.0.0.1: borrow it.
	certSrv := httptest.NewUnstartedServer(nil)
	certSrv.StartTLS()
	cert := certSrv.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(certSrv.Certificate())
	certSrv.Close()

	s := &Server{ClientTLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, arrived: make(chan struct{}, 100)}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "127.0.0.1"
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "smtp://" + l.Addr().String()
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// Messages returns what arrived so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.got...)
}

// Await waits up to d for the n-th message and returns them all.
func (s *Server) Await(t testing.TB, n int, d time.Duration) []Message {
	t.Helper()
	deadline := time.After(d)
	for {
		if got := s.Messages(); len(got) >= n {
			return got
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("%d messages within %s, want %d", len(s.Messages()), d, n)
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	msg  Message
}

func (se *session) Reset()        { se.msg = Message{} }
func (se *session) Logout() error { return nil }

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.msg.From = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.msg.To = append(se.msg.To, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	se.msg.Subject = m.Header.Get("Subject")
	se.msg.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	_, se.msg.TLS = se.conn.TLSConnectionState()
	se.s.mu.Lock()
	se.s.got = append(se.s.got, se.msg)
	se.s.mu.Unlock()
	select {
	case se.s.arrived <- struct{}{}:
	default:
	}
	return nil
}
