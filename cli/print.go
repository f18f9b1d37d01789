package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
)

// licenseAnswer is the admin API's licence view.
type licenseAnswer struct {
	License       object   `json:"license"`
	Installations []object `json:"installations"`
}

// write prints the licence's fields, then its installations.
func (a licenseAnswer) write(w io.Writer) {
	writeFields(w, a.License)
	fmt.Fprintln(w)
	writeTable(w, installationHeader, installationColumns, a.Installations, "no installations")
	writeAddons(w, a.Installations)
}

// addonRef is an add-on attached to an installation, as the admin API
// lists it.
type addonRef struct {
	LicenseID      string `json:"license_id"`
	InstallationID string `json:"installation_id"`
	Product        string `json:"product"`
}

// writeAddons prints the add-ons under the installation they are
// attached to, and what an add-on licence's installations are attached
// to (SPEC section 14); nothing when there are none.
func writeAddons(w io.Writer, installations []object) {
	var lines []string
	for _, in := range installations {
		var refs []addonRef
		_ = json.Unmarshal(in["addons"], &refs)
		for _, r := range refs {
			lines = append(lines, fmt.Sprintf("%s\tadd-on %s\tlicence %s\tinstallation %s",
				printable(in.text("id")), printable(r.Product), printable(r.LicenseID), printable(r.InstallationID)))
		}
		if base := in.text("base_installation"); base != "" {
			lines = append(lines, fmt.Sprintf("%s\tattached to\tlicence %s\tinstallation %s",
				printable(in.text("id")), printable(in.text("base_license")), printable(base)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "INSTALLATION\tADD-ON\tLICENCE\tINSTALLATION")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// object is a JSON object of an answer, kept field by field so that a
// table shows every field the admin API sends, including newer ones.
type object map[string]json.RawMessage

// text returns a string field, or "" when it is absent or not a string.
func (o object) text(key string) string {
	var s string
	_ = json.Unmarshal(o[key], &s)
	return s
}

// cell renders a field for a table: a string without quotes, null or
// absent as "-", anything else as compact JSON.
func (o object) cell(key string) string {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			s = buf.String()
		} else {
			s = string(raw)
		}
	}
	return printable(s)
}

// writeFields prints an object as "field  value" lines: the licence
// fields first, then the others in name order.
func writeFields(w io.Writer, o object) {
	keys := slices.Clone(licenseFields)
	var rest []string
	for k := range o {
		if !slices.Contains(licenseFields, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range append(keys, rest...) {
		fmt.Fprintf(w, "%s\t%s\n", printable(k), o.cell(k))
	}
}

// writeTable prints rows under header, one column per field of
// columns, or the line empty when there are no rows.
func writeTable(w io.Writer, header, columns []string, rows []object, empty string) {
	if len(rows) == 0 {
		fmt.Fprintln(w, empty)
		return
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	cells := make([]string, len(columns))
	for _, row := range rows {
		for i, col := range columns {
			cells[i] = row.cell(col)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
}

// printable makes a value from the admin API safe for a table on a
// terminal: control characters (tabs, newlines, escape sequences, which
// an installer could put in a domain or label) become "?"; empty is "-".
func printable(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}
