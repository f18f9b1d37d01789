package web

import "net/http"

// FlashKind says how a flash message is shown.
type FlashKind string

// Flash kinds.
const (
	FlashInfo  FlashKind = "info"
	FlashError FlashKind = "error"
)

// Flash is a one-shot message carried across a redirect (post, redirect,
// get): "Installation deactivated." shown once on the page the form
// redirects to. It is sealed like the session, so no one else can put
// words on the page, and rendered escaped like any data.
type Flash struct {
	Kind FlashKind `json:"k,omitempty"`
	Text string    `json:"t"`
	// Owner, when set, is the session the message is for (its id): a
	// surface where two people may share a browser (the console, behind
	// basic_auth) shows it only to that session.
	Owner string `json:"o,omitempty"`
}

// SetFlash sets the message the next page shows. It expires after a few
// minutes: the redirect follows at once, and a message must not surface
// on a page opened much later.
func (s *Sessions) SetFlash(w http.ResponseWriter, r *http.Request, f Flash) error {
	if f.Kind == "" {
		f.Kind = FlashInfo
	}
	return s.flash.write(w, r, f, s.now().Add(flashTTL))
}

// PopFlash returns the pending message, if any, and clears it so a reload
// does not show it again.
func (s *Sessions) PopFlash(w http.ResponseWriter, r *http.Request) (Flash, bool) {
	var f Flash
	if _, ok := s.flash.read(r, &f); !ok {
		if len(r.CookiesNamed(s.flash.nameFor(r))) > 0 {
			s.flash.clear(w, r) // a stale or forged one: drop it
		}
		return Flash{}, false
	}
	s.flash.clear(w, r)
	return f, true
}
