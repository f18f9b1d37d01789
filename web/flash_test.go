package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestFlash(t *testing.T) {
	const target = "https://h/account/licenses/lic_1"
	tests := []struct {
		name     string
		set      *Flash
		advance  time.Duration
		want     Flash
		wantOK   bool
		wantDrop bool // a clearing Set-Cookie
	}{
		{name: "none", wantOK: false},
		{name: "info by default", set: &Flash{Text: "Installation deactivated."}, want: Flash{Kind: FlashInfo, Text: "Installation deactivated."}, wantOK: true, wantDrop: true},
		{name: "error", set: &Flash{Kind: FlashError, Text: "Try again."}, want: Flash{Kind: FlashError, Text: "Try again."}, wantOK: true, wantDrop: true},
		{name: "stale", set: &Flash{Text: "old"}, advance: flashTTL, wantOK: false, wantDrop: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := testSessions(t, testMaster(t, 0), clk)
			r := httptest.NewRequest(http.MethodGet, target, nil)
			if tt.set != nil {
				rec := httptest.NewRecorder()
				if err := s.SetFlash(rec, httptest.NewRequest(http.MethodPost, target, nil), *tt.set); err != nil {
					t.Fatal(err)
				}
				c := cookieNamed(rec, testCookie+flashSuffix)
				if c == nil || !c.Secure || !c.HttpOnly {
					t.Fatalf("flash cookie = %+v", c)
				}
				r = withCookies(http.MethodGet, target, c)
			}
			clk.Advance(tt.advance)
			rec := httptest.NewRecorder()
			got, ok := s.PopFlash(rec, r)
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("PopFlash = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
			c := cookieNamed(rec, testCookie+flashSuffix)
			if dropped := c != nil && c.MaxAge < 0; dropped != tt.wantDrop {
				t.Errorf("cleared = %v, want %v", dropped, tt.wantDrop)
			}
		})
	}
}
