package policy

import (
	"slices"
	"testing"
	"time"
)

func TestReleaseIdle(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := Rules{Activations: 1, ReleaseIdle: time.Hour}
	lic := License{Status: "active"}
	old := Installation{ID: "old", Domain: "old.com", Class: ClassProduction, Active: true, CreatedAt: now.Add(-3 * time.Hour)}
	for _, c := range []struct {
		name     string
		lastSeen time.Duration // ago; 0: never seen
		release  bool
	}{
		{"never seen, created 3h ago", 0, true},
		{"seen 61m ago", 61 * time.Minute, true},
		{"seen exactly 1h ago", time.Hour, true},
		{"seen 10m ago", 10 * time.Minute, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := old
			if c.lastSeen > 0 {
				in.LastSeenAt = now.Add(-c.lastSeen)
			}
			d, rel, ref := r.DecideActivationReleasing(lic, []Installation{in}, "new.com", "", now)
			if !c.release {
				if ref == nil || ref.Code != CodeActivationLimit {
					t.Fatalf("decision %+v, %v; want activation_limit_reached", d, ref)
				}
				return
			}
			if ref != nil || !slices.Equal(rel, []string{"old"}) || d.SlotsUsed != 1 {
				t.Fatalf("decision %+v, %v; want old released", d, ref)
			}
		})
	}
	// Without release_idle nothing is idle.
	if _, _, ref := (Rules{Activations: 1}).DecideActivationReleasing(lic, []Installation{old}, "new.com", "", now); ref == nil {
		t.Fatal("an installation was released without release_idle")
	}
	// Re-activating the idle installation's own domain reuses it.
	if d, rel, ref := r.DecideActivationReleasing(lic, []Installation{old}, "old.com", "", now); ref != nil || d.Reuse != "old" || rel != nil {
		t.Fatalf("re-activation %+v, %v", d, ref)
	}
	// Only the idle of two holders is released, longest unused first.
	r.Activations = 2
	a := Installation{ID: "a", Domain: "a.com", Class: ClassProduction, Active: true, CreatedAt: now.Add(-5 * time.Hour), LastSeenAt: now.Add(-2 * time.Hour)}
	b := Installation{ID: "b", Domain: "b.com", Class: ClassProduction, Active: true, CreatedAt: now.Add(-5 * time.Hour), LastSeenAt: now.Add(-time.Minute)}
	if d, rel, ref := r.DecideActivationReleasing(lic, []Installation{b, a}, "c.com", "", now); ref != nil || !slices.Equal(rel, []string{"a"}) {
		t.Fatalf("decision %+v, %v", d, ref)
	}
}
