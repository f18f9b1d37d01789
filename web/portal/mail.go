package portal

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Mailer sends one plain-text e-mail.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// smtpMailer sends over SMTP, always encrypted: smtp:// insists on
// STARTTLS (a server without it gets nothing: a sign-in link in the clear
// is a sign-in for whoever reads the wire), smtps:// is TLS from the
// first byte.
type smtpMailer struct {
	addr     string // host:port
	host     string
	implicit bool
	auth     smtp.Auth
	from     *mail.Address
	tls      *tls.Config
}

// smtpTimeout bounds one message's whole conversation.
const smtpTimeout = 30 * time.Second

// NewSMTPMailer parses smtp://[user:pass@]host[:587] or
// smtps://[user:pass@]host[:465] and the From address; tlsConfig, when
// given, is used for the TLS handshake (tests pin their own CA).
func NewSMTPMailer(rawURL, from string, tlsConfig *tls.Config) (Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") {
		return nil, errors.New("smtp: give smtp://[user:pass@]host[:port] (STARTTLS) or smtps://... (TLS)")
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("from: %q is not an address: %w", from, err)
	}
	m := &smtpMailer{host: u.Hostname(), implicit: u.Scheme == "smtps", from: addr}
	port := u.Port()
	if port == "" {
		port = map[bool]string{true: "465", false: "587"}[m.implicit]
	}
	m.addr = net.JoinHostPort(m.host, port)
	if u.User != nil {
		pass, _ := u.User.Password()
		m.auth = smtp.PlainAuth("", u.User.Username(), pass, m.host)
	}
	m.tls = &tls.Config{ServerName: m.host, MinVersion: tls.VersionTLS12}
	if tlsConfig != nil {
		m.tls = tlsConfig.Clone()
		if m.tls.ServerName == "" {
			m.tls.ServerName = m.host
		}
	}
	return m, nil
}

// Send implements Mailer.
func (m *smtpMailer) Send(ctx context.Context, to, subject, body string) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return errors.New("smtp: not a recipient address")
	}
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	conn, err := m.dial(ctx)
	if err != nil {
		return fmt.Errorf("smtp: connecting to %s: %w", m.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if !m.implicit {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("smtp: the server offers no STARTTLS; nothing was sent in the clear")
		}
		if err := c.StartTLS(m.tls); err != nil {
			return fmt.Errorf("smtp: STARTTLS: %w", err)
		}
	}
	if m.auth != nil {
		if err := c.Auth(m.auth); err != nil {
			return fmt.Errorf("smtp: authentication: %w", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return fmt.Errorf("smtp: RCPT TO refused")
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(message(m.from, rcpt, subject, body)); err != nil {
		return fmt.Errorf("smtp: writing: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return c.Quit()
}

func (m *smtpMailer) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if m.implicit {
		return (&tls.Dialer{NetDialer: d, Config: m.tls}).DialContext(ctx, "tcp", m.addr)
	}
	return d.DialContext(ctx, "tcp", m.addr)
}

// message is a plain-text message with its headers (RFC 5322). The
// subject is ASCII from the strings table; header injection is impossible
// since every header value is built here, none from input but the parsed
// addresses.
func message(from, to *mail.Address, subject, body string) []byte {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	var b strings.Builder
	b.WriteString("From: " + from.String() + "\r\n")
	b.WriteString("To: " + to.String() + "\r\n")
	b.WriteString("Subject: " + subject + "\r\n")
	b.WriteString("Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <" + hex.EncodeToString(id) + "@" + mailDomain(from.Address) + ">\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

// mailDomain is the domain of an address.
func mailDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}
