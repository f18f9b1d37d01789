package httpapi

import "testing"

func TestIsLicenseHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"X-License-Type":    true,
		"x-license-product": true,
		"X-License_Type":    true, // reaches php_fastcgi as HTTP_X_LICENSE_TYPE
		"X_License_Domain":  true,
		"X-License":         false,
		"X-Licenses":        false,
		"X-Licensed-To":     false,
		"Authorization":     false,
	} {
		if got := IsLicenseHeader(name); got != want {
			t.Errorf("IsLicenseHeader(%q) = %v, want %v", name, got, want)
		}
	}
}
