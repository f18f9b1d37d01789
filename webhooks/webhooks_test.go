package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference vector (its libraries' tests), checked
// here with openssl as well: HMAC-SHA256 of id.timestamp.body.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(1614265330, 0)

func mustSecret(t *testing.T, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func TestSignReferenceVector(t *testing.T) {
	got := Sign(vectorID, vectorTime, []byte(vectorBody), []Secret{mustSecret(t, vectorSecret)})
	if got != vectorSig {
		t.Fatalf("Sign = %q, want %q", got, vectorSig)
	}
}

func TestSignWithTwoSecretsDuringARotation(t *testing.T) {
	other := mustSecret(t, "whsec_"+strings.Repeat("QUJD", 8))
	got := Sign(vectorID, vectorTime, []byte(vectorBody), []Secret{other, mustSecret(t, vectorSecret)})
	parts := strings.Split(got, " ")
	if len(parts) != 2 || parts[1] != vectorSig || !strings.HasPrefix(parts[0], "v1,") || parts[0] == vectorSig {
		t.Fatalf("Sign with two secrets = %q", got)
	}
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!", "whsec_QUJD"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		} else if strings.Contains(err.Error(), strings.TrimPrefix(bad, "whsec_")) && len(bad) > 8 {
			t.Errorf("error %q quotes the secret", err)
		}
	}
	s := mustSecret(t, vectorSecret)
	for _, shown := range []string{s.String(), s.GoString()} {
		if strings.Contains(shown, "MfKQ") {
			t.Fatalf("secret shown as %q", shown)
		}
	}
}

func TestNextAttemptCoversMoreThanADay(t *testing.T) {
	at := time.Unix(0, 0)
	var total time.Duration
	n := 0
	for attempts := 1; ; attempts++ {
		next, ok := NextAttempt(at, attempts, 0, 0)
		if !ok {
			break
		}
		if next.Sub(at) <= 0 {
			t.Fatalf("attempt %d: no wait", attempts)
		}
		total += next.Sub(at)
		at = next
		n++
	}
	if total < 24*time.Hour || n+1 != MaxAttempts {
		t.Fatalf("retries span %v over %d attempts", total, n+1)
	}
	// Retry-After longer than the schedule wins; shorter does not shorten it.
	if next, _ := NextAttempt(time.Unix(0, 0), 1, time.Hour, 0); next.Sub(time.Unix(0, 0)) != time.Hour {
		t.Fatalf("Retry-After 1h: %v", next)
	}
	if next, _ := NextAttempt(time.Unix(0, 0), 3, time.Second, 0); next.Sub(time.Unix(0, 0)) != 30*time.Minute {
		t.Fatalf("short Retry-After: %v", next)
	}
	next, _ := NextAttempt(time.Unix(0, 0), 2, 0, 0.999)
	if d := next.Sub(time.Unix(0, 0)); d < 5*time.Minute || d > 6*time.Minute {
		t.Fatalf("jitter: %v", d)
	}
}

func TestSend(t *testing.T) {
	var got *http.Request
	var gotBody string
	status, retry := 204, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		gotBody = b.String()
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	client := NewClient(time.Second)
	m := Message{ID: vectorID, Timestamp: vectorTime, Body: []byte(vectorBody)}
	secrets := []Secret{mustSecret(t, vectorSecret)}

	r := Send(context.Background(), client, srv.URL, m, secrets)
	if !r.Delivered || r.Status != 204 {
		t.Fatalf("2xx: %+v", r)
	}
	if got.Header.Get("webhook-id") != vectorID || got.Header.Get("webhook-timestamp") != "1614265330" ||
		got.Header.Get("webhook-signature") != vectorSig || gotBody != vectorBody ||
		got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request headers %v body %q", got.Header, gotBody)
	}

	status, retry = 429, "120"
	if r := Send(context.Background(), client, srv.URL, m, secrets); r.Delivered || r.RetryAfter != 2*time.Minute {
		t.Fatalf("429: %+v", r)
	}
	status, retry = 500, "120"
	if r := Send(context.Background(), client, srv.URL, m, secrets); r.Delivered || r.RetryAfter != 0 || r.Status != 500 {
		t.Fatalf("500: %+v", r)
	}
	status, retry = 302, ""
	if r := Send(context.Background(), client, srv.URL, m, secrets); r.Delivered {
		t.Fatalf("a redirect counted as delivered: %+v", r)
	}
	srv.Close()
	// The error is stored and logged: it must not spell out the URL, whose
	// query may hold the receiver's token.
	hook := srv.URL + "/hook?token=receiver-secret-123"
	if r := Send(context.Background(), client, hook, m, secrets); r.Delivered || r.Err == nil || r.Status != 0 ||
		strings.Contains(r.Err.Error(), "receiver-secret-123") || strings.Contains(r.Err.Error(), srv.URL) {
		t.Fatalf("connection refused: %+v", r)
	}
}
