package httpapi

import (
	"errors"
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
)

// A refused input names the field and what is wrong with it, as a 400 like
// the admin API's other input errors, not a bare "invalid fields".
func TestAdminFailValidationNamesFields(t *testing.T) {
	a := &Admin{Logger: zap.NewNop()}
	cases := []struct {
		err  error
		want string
	}{
		{&gateway.Error{Code: gateway.CodeValidationFailed, Detail: "The request has invalid fields.",
			Fields: map[string][]string{"cursor": {"is not a cursor this gateway issued"}}},
			"cursor: is not a cursor this gateway issued"},
		{&gateway.Error{Code: gateway.CodeValidationFailed, Detail: "The request has invalid fields.",
			Fields: map[string][]string{"reason": {"is too long"}, "limit": {"is too large", "is odd"}}},
			"limit: is too large, is odd; reason: is too long"},
		{&gateway.Error{Code: gateway.CodeValidationFailed, Detail: "The request has invalid fields."},
			"The request has invalid fields."},
	}
	for _, c := range cases {
		var ae *StatusError
		if err := a.fail(c.err, "audit event"); !errors.As(err, &ae) {
			t.Fatalf("%v is not a *StatusError", err)
		}
		if ae.Status != http.StatusBadRequest || ae.Err.Error() != c.want {
			t.Errorf("got %d %q, want 400 %q", ae.Status, ae.Err, c.want)
		}
	}
	// Other public errors keep their status and detail.
	var ae *StatusError
	err := a.fail(&gateway.Error{Code: gateway.CodeLicenseLocked, Detail: "Locked."}, "licence")
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Err.Error() != "Locked." {
		t.Errorf("got %v", err)
	}
}
