package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// A product's mappings are a plain JSON field keyed by source name, so
// Caddy's JSON documentation can show them; a mapping option spliced into
// the product (the form before) is refused by name, as Caddy refuses
// unknown fields.
func TestProductJSONMappings(t *testing.T) {
	in := `{"sources":["keygen","envato"],"activations":2,"mappings":{"envato":["1","2"],"keygen":["k"]}}`
	var p Product
	if err := caddy.StrictUnmarshalJSON([]byte(in), &p); err != nil {
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
	if string(out) != in {
		t.Fatalf("encoded %s, want %s", out, in)
	}
	err = caddy.StrictUnmarshalJSON([]byte(`{"sources":["envato"],"envato_item":["1"]}`), new(Product))
	if err == nil || !strings.Contains(err.Error(), "envato_item") {
		t.Fatalf("a spliced mapping option: %v, want it refused by name", err)
	}
	if out, _ := json.Marshal(Product{}); string(out) != `{}` {
		t.Fatalf("empty product encoded %s", out)
	}
	// A source without a mapping option takes none.
	p = Product{Sources: []string{"static"}, Mappings: map[string][]string{"static": {"x"}}}
	if err := p.checkMappings("p"); err == nil || err.Error() != "product p: mappings: source static takes no product mapping" {
		t.Fatalf("a mapping for static: %v", err)
	}
}

// The caps and leak_threshold reach the product's rules; a cap needs the
// free treatment.
func TestProductBuildIntegrityOptions(t *testing.T) {
	sources := map[string]upstreams.Source{"static": nil}
	p, err := (&Product{Sources: []string{"static"}, LocalCap: 8, StagingCap: 2, LeakThreshold: "10/48h"}).build(nil, "p", sources)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules.LocalCap != 8 || p.Rules.StagingCap != 2 || p.Leak != (policy.LeakRule{Threshold: 10, Window: 48 * time.Hour}) {
		t.Fatalf("rules %+v, leak %+v", p.Rules, p.Leak)
	}
	for _, bad := range []Product{
		{Sources: []string{"static"}, LocalDomains: "slot", LocalCap: 3},
		{Sources: []string{"static"}, StagingCap: -1},
		{Sources: []string{"static"}, LeakThreshold: "many"},
	} {
		if _, err := bad.build(nil, "p", sources); err == nil {
			t.Errorf("%+v built", bad)
		}
	}
}
