package web

// English is every string the kit's own templates show, in one place so a
// wording change or a future translation touches one file. A surface adds
// its own strings with RendererConfig.Strings; templates read them with
// {{t "key"}}, and a missing key fails the render (and its test) instead
// of showing an empty label.
var English = map[string]string{
	"lang":                      "en",
	"site.name":                 "Licences",
	"layout.skip":               "Skip to main content",
	"layout.signed_in_as":       "Signed in as",
	"layout.nav":                "Sections",
	"layout.footer":             "Licence gateway powered by licensegate",
	"flash.info":                "Notice",
	"flash.error":               "Error",
	"error.try_again":           "Try again",
	"error.forbidden.title":     "This form could not be accepted",
	"error.forbidden.message":   "For your security, a form has to come from a page of this site opened recently. Go back, reload the page and try again.",
	"error.not_found.title":     "Page not found",
	"error.not_found.message":   "There is nothing at this address.",
	"error.unavailable.title":   "Try again shortly",
	"error.unavailable.message": "A service this page needs is not answering right now. Nothing was changed.",
	"error.internal.title":      "Something went wrong",
	"error.internal.message":    "The page could not be shown. Nothing was changed.",
}
