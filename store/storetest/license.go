package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func testLicenseStateRoundTrip(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)

	empty, err := s.LicenseState(ctx, "lic_unknown")
	if err != nil {
		t.Fatalf("LicenseState(unknown): %v", err)
	}
	if empty == nil || empty.License != nil || len(empty.Installations) != 0 {
		t.Fatalf("unknown licence = %+v, want an empty state", empty)
	}

	written := put(t, s, sampleState())
	want := sampleState()
	want.License.Version, want.License.Counted = 1, true
	if !reflect.DeepEqual(written, want) {
		t.Fatalf("UpdateLicense returned\n%+v\nwant\n%+v", written, want)
	}
	got := read(t, s, "lic_1")
	if !reflect.DeepEqual(got.License, want.License) {
		t.Errorf("licence read back\n%+v\nwant\n%+v", got.License, want.License)
	}
	if !reflect.DeepEqual(got.Installations, want.Installations) {
		t.Errorf("installations read back\n%+v\nwant\n%+v", got.Installations, want.Installations)
	}

	// What a read returns is the caller's: changing it changes nothing stored.
	got.License.Status = store.LicenseRevoked
	got.License.KeyCiphertext[0] = 9
	*got.License.ExpiresAt = t0
	got.Installations[0].Domain = "evil.com"
	if again := read(t, s, "lic_1"); !reflect.DeepEqual(again, want) {
		t.Fatalf("changing a read's result changed the store: %+v", again)
	}

	// The state handed to fn is a deep copy: changing it without returning
	// it writes nothing.
	_, err = s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		if !reflect.DeepEqual(st, want) {
			t.Errorf("fn got\n%+v\nwant the stored state\n%+v", st, want)
		}
		st.License.Status = store.LicenseRevoked
		st.License.KeyCiphertext[0] = 9
		*st.License.SupportUntil = t0
		st.Installations[0].Domain = "evil.com"
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if again := read(t, s, "lic_1"); !reflect.DeepEqual(again, want) {
		t.Fatalf("state changed by an fn that returned nil:\n%+v", again)
	}

	// Licences are independent.
	if other := read(t, s, "lic_2"); other.License != nil || len(other.Installations) != 0 {
		t.Fatalf("lic_2 = %+v, want empty", other)
	}
	put(t, s, license("lic_2"))
	if again := read(t, s, "lic_1"); !reflect.DeepEqual(again, want) {
		t.Fatalf("writing lic_2 changed lic_1: %+v", again)
	}
}

func testUpdateLicenseFnOutcomes(t *testing.T, h *harness) {
	ctx := context.Background()
	errRefused := errors.New("policy refused")
	wrapped := fmt.Errorf("deciding: %w", errRefused)
	// fn's error may wrap one of the store's own sentinels: it is still
	// fn's, not a store failure to retry or rewrap.
	conflict := fmt.Errorf("policy: %w", store.ErrConflict)

	tests := []struct {
		name        string
		fn          func(*store.LicenseState) (*store.LicenseState, error)
		wantErr     error
		wantVersion int64
		wantStatus  string
		wantNotice  bool
	}{
		{
			name: "error",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = store.LicenseRevoked
				return st, errRefused
			},
			wantErr:     errRefused,
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name:        "wrapped error",
			fn:          func(*store.LicenseState) (*store.LicenseState, error) { return nil, wrapped },
			wantErr:     wrapped,
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name:        "error sentinel shared with the store",
			fn:          func(*store.LicenseState) (*store.LicenseState, error) { return nil, conflict },
			wantErr:     conflict,
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name: "nil state",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = store.LicenseRevoked
				st.Installations = append(st.Installations, store.Installation{ID: "ins_9", LicenseID: "lic_1"})
				return nil, nil
			},
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name: "write",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = store.LicenseSuspended
				return st, nil
			},
			wantVersion: 2, wantStatus: store.LicenseSuspended, wantNotice: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t)
			changes := subscribe(t, s)
			put(t, s, license("lic_1"))
			noticesUntil(t, changes, "lic_1")

			calls := 0
			got, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				calls++
				return tt.fn(st)
			})
			if calls == 0 {
				t.Fatal("fn was never called")
			}
			if tt.wantErr != nil {
				if err != tt.wantErr || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %#v, want fn's error unchanged (%#v)", err, tt.wantErr)
				}
				if errors.Is(err, store.ErrUnavailable) {
					t.Fatal("fn's error was reported as the store being unavailable")
				}
				if got != nil {
					t.Fatalf("state %+v returned with an error", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || got.License == nil || got.License.Version != tt.wantVersion {
					t.Fatalf("returned %+v, want version %d", got, tt.wantVersion)
				}
				if tt.wantNotice && got.License.Status != tt.wantStatus {
					t.Fatalf("returned status %s, want %s", got.License.Status, tt.wantStatus)
				}
			}
			stored := read(t, s, "lic_1")
			if stored.License.Version != tt.wantVersion || stored.License.Status != tt.wantStatus || len(stored.Installations) != 0 {
				t.Fatalf("stored version %d status %s (%d installations), want %d %s (none)",
					stored.License.Version, stored.License.Status, len(stored.Installations), tt.wantVersion, tt.wantStatus)
			}
			if _, err := s.InstallationLicense(ctx, "ins_9"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("installation indexed by an update that wrote nothing: %v", err)
			}

			if tt.wantNotice {
				noticesUntil(t, changes, "lic_1")
			} else if notices := settle(t, s, changes, "lic_sentinel"); announced(notices, "lic_1") {
				t.Fatalf("notice for lic_1 although nothing was written (notices %+v)", notices)
			}
		})
	}
}

// testUpdateLicenseReturnsStoredState: the answer of a write is what a
// fresh read returns, so callers can hand it on without reading again.
func testUpdateLicenseReturnsStoredState(t *testing.T, h *harness) {
	s := h.open(t)
	put(t, s, sampleState())
	got := update(t, s, "lic_1", func(st *store.LicenseState) {
		st.License.Status = store.LicenseActive
		st.License.StatusBy = ""
		st.License.KeyCiphertext = nil
		st.License.ExpiresAt = nil
		st.Installations[1].Status = store.InstallationActive
		st.Installations = append(st.Installations, store.Installation{
			ID: "ins_3", LicenseID: "lic_1", Domain: "new.example", Status: store.InstallationActive,
			Generation: 7, CreatedAt: t0.Add(time.Microsecond),
		})
	})
	fresh := read(t, s, "lic_1")
	if !reflect.DeepEqual(got, fresh) {
		t.Fatalf("UpdateLicense returned\n%+v\nbut a read returns\n%+v", got, fresh)
	}
	if got.License.Version != 2 || len(got.Installations) != 3 || got.License.ExpiresAt != nil ||
		got.Installations[1].Status != store.InstallationActive || got.Installations[2].Generation != 7 {
		t.Fatalf("written state %+v does not hold the change", got)
	}
	// Installations keep their order.
	for i, id := range []string{"ins_1", "ins_2", "ins_3"} {
		if got.Installations[i].ID != id {
			t.Fatalf("installation %d is %s, want %s", i, got.Installations[i].ID, id)
		}
	}

	// The answer belongs to the caller.
	got.Installations[0].Domain = "evil.com"
	if again := read(t, s, "lic_1"); !reflect.DeepEqual(again, fresh) {
		t.Fatalf("changing UpdateLicense's answer changed the store: %+v", again)
	}
}

func testUpdateLicenseRefusesStateWithoutLicence(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installations = append(st.Installations, store.Installation{ID: "ins_1"})
		return st, nil
	})
	if err == nil {
		t.Fatal("writing a state with a nil licence succeeded")
	}
	if _, err := s.InstallationLicense(ctx, "ins_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("index written by a failed update: %v", err)
	}
	if st := read(t, s, "lic_1"); st.License != nil || len(st.Installations) != 0 {
		t.Fatalf("state written by a failed update: %+v", st)
	}
}

func testVersionIncrements(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	for want := int64(1); want <= 5; want++ {
		got, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
			if st.License == nil {
				if want != 1 {
					return nil, fmt.Errorf("licence missing at version %d", want)
				}
				st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
			} else if st.License.Version != want-1 {
				return nil, fmt.Errorf("fn saw version %d, want %d", st.License.Version, want-1)
			}
			st.License.UpdatedAt = t0.Add(time.Duration(want) * time.Second)
			return st, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.License.Version != want {
			t.Fatalf("returned version %d, want %d", got.License.Version, want)
		}
		if st := read(t, s, "lic_1"); st.License.Version != want {
			t.Fatalf("stored version %d, want %d", st.License.Version, want)
		}
	}
	// A write that changes nothing visible is still a write.
	if got := update(t, s, "lic_1", func(*store.LicenseState) {}); got.License.Version != 6 {
		t.Fatalf("version %d after an unchanged write, want 6", got.License.Version)
	}
}

var errLimit = errors.New("activation limit reached")

// testConcurrentActivationsRespectLimit is the activation race: many
// writers each add an installation only while fewer than the limit are
// active. Exactly the limit may win, whatever the interleaving.
func testConcurrentActivationsRespectLimit(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	const n, limit = 100, 3
	base := license("lic_1")
	base.License.ActivationsLimit = limit
	put(t, s, base)

	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("ins_%03d", i)
			got, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				active := 0
				for _, in := range st.Installations {
					if in.Active() {
						active++
					}
				}
				if active >= st.License.ActivationsLimit {
					return nil, errLimit
				}
				st.Installations = append(st.Installations, store.Installation{
					ID: id, LicenseID: "lic_1", Domain: id + ".example", Status: store.InstallationActive,
				})
				return st, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				if got.Installation(id) == nil {
					t.Errorf("%s won but the returned state lacks it: %+v", id, got.Installations)
				}
			case err == errLimit:
				refused++
			default:
				t.Errorf("activation %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if won != limit || refused != n-limit {
		t.Fatalf("%d activations won and %d were refused, want %d and %d", won, refused, limit, n-limit)
	}
	st := read(t, s, "lic_1")
	if len(st.Installations) != limit {
		t.Fatalf("%d installations stored, want %d: %+v", len(st.Installations), limit, st.Installations)
	}
	if st.License.Version != 1+limit {
		t.Fatalf("version %d after %d writes", st.License.Version, 1+limit)
	}
}

func testConcurrentAppends(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				if st.License == nil {
					st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
				}
				st.Installations = append(st.Installations, store.Installation{ID: fmt.Sprintf("ins_%d", i), LicenseID: "lic_1"})
				return st, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := read(t, s, "lic_1")
	if len(st.Installations) != n {
		t.Fatalf("%d installations after %d concurrent appends, want %d", len(st.Installations), n, n)
	}
	seen := map[string]bool{}
	for _, in := range st.Installations {
		if seen[in.ID] {
			t.Fatalf("installation %s twice", in.ID)
		}
		seen[in.ID] = true
		if lic, err := s.InstallationLicense(ctx, in.ID); err != nil || lic != "lic_1" {
			t.Fatalf("index for %s = %q, %v", in.ID, lic, err)
		}
	}
	if st.License.Version != n {
		t.Fatalf("version %d after %d writes", st.License.Version, n)
	}
}

func testInstallationLicense(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	if _, err := s.InstallationLicense(ctx, "ins_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown installation = %v, want ErrNotFound", err)
	}
	put(t, s, sampleState())
	lic2 := license("lic_2")
	lic2.Installations = []store.Installation{{ID: "ins_3", LicenseID: "lic_2"}}
	put(t, s, lic2)
	// An installation added by a later update is indexed too, and one
	// deactivated stays indexed.
	update(t, s, "lic_1", func(st *store.LicenseState) {
		st.Installations = append(st.Installations, store.Installation{ID: "ins_4", LicenseID: "lic_1"})
		st.Installations[0].Status = store.InstallationDeactivated
	})
	// One left out of a later state (pruned) is forgotten.
	update(t, s, "lic_2", func(st *store.LicenseState) {
		st.Installations = append(st.Installations, store.Installation{ID: "ins_6", LicenseID: "lic_2"})
	})
	update(t, s, "lic_2", func(st *store.LicenseState) {
		st.Installations = st.Installations[1:] // ins_3 pruned
	})
	for _, tt := range []struct{ ins, lic string }{
		{"ins_1", "lic_1"}, {"ins_2", "lic_1"}, {"ins_3", ""}, {"ins_4", "lic_1"}, {"ins_5", ""}, {"ins_6", "lic_2"}, {"", ""}, {"lic_1", ""},
	} {
		got, err := s.InstallationLicense(ctx, tt.ins)
		if tt.lic == "" {
			if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("InstallationLicense(%q) = %q, %v; want ErrNotFound", tt.ins, got, err)
			}
			continue
		}
		if err != nil || got != tt.lic {
			t.Errorf("InstallationLicense(%q) = %q, %v; want %q", tt.ins, got, err, tt.lic)
		}
	}
}
