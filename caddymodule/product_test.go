package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A product's mappings are read and written under their sources' options,
// sold-on sources first; a key no source names is refused like an unknown
// field.
func TestProductJSONKeepsMappingOptions(t *testing.T) {
	in := `{"sources":["keygen","envato"],"activations":2,"envato_item":["1","2"],"keygen_product":["k"]}`
	var p Product
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"envato": {"1", "2"}, "keygen": {"k"}}
	if p.Activations != 2 || !reflect.DeepEqual(p.Mappings, want) {
		t.Fatalf("decoded %+v, want mappings %v", p, want)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := `{"sources":["keygen","envato"],"activations":2,"keygen_product":["k"],"envato_item":["1","2"]}`; string(out) != got {
		t.Fatalf("encoded %s, want %s", out, got)
	}
	if err := json.Unmarshal([]byte(`{"sources":["envato"],"envato_items":["1"]}`), new(Product)); err == nil || !strings.Contains(err.Error(), "envato_items") {
		t.Fatalf("an unknown key: %v, want it refused by name", err)
	}
	if out, _ := json.Marshal(Product{}); string(out) != `{}` {
		t.Fatalf("empty product encoded %s", out)
	}
}
