// Package scaleload fills a Redis with many licences as the gateway stores
// them, for the scale measurements of SPEC section 11 (issue 23's console
// search, issue 26's load at 10k, 1M and 10M licences).
//
// Licence i is an Envato purchase (a UUID-shaped purchase code derived
// from i) of one product, bought by buyer i (an Envato-style username and
// an e-mail address), with one active installation on its own domain.
// Everything about it is a pure function of i and the master secret, so a
// measurement can pick licence i and know its key, domain, e-mail and ids
// without reading anything back, and a load that was interrupted can be
// resumed.
//
// Each licence is written with the Redis store's own UpdateLicense (one
// WATCH/MULTI/EXEC per licence, as an activation does), so the state key,
// the installation index, the lookup terms (domain, e-mail hash, buyer),
// the due index and the licence list are exactly what the gateway writes;
// see Fixture.State for what the state holds and how it differs from an
// activation's.
package scaleload

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/envato"
)

// The fixture's constants.
const (
	// DefaultSecret is the master secret of a load: bench/run.sh's, so a
	// gateway started by it on the same Redis finds the licences too.
	DefaultSecret = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	// Source is the licences' source: Envato, whose purchase codes are
	// UUIDs.
	Source = envato.Name
	// Product is the product every licence is of, Envato item ItemID.
	Product = "bench-theme"
	ItemID  = "20260301"
)

// Epoch is when the licences were bought and activated (a fixed time, so
// a state is a function of i alone).
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Fixture derives licence i's facts and state under one master secret.
type Fixture struct {
	Master *secret.Master
	// Service is a gateway on the store being filled (Search, EmailHash):
	// its one source is Envato at a test server that answers 503, since
	// nothing here asks a marketplace.
	Service *gateway.Service
	srv     *httptest.Server
}

// NewFixture builds the fixture and its gateway on st. Close it when done.
func NewFixture(st store.Store, secretText string) (*Fixture, error) {
	m, err := secret.New([]byte(secretText))
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the bench's Envato is not there", http.StatusServiceUnavailable)
	}))
	src, err := envato.New(envato.Config{
		BaseURL:  srv.URL,
		Token:    "bench-token",
		Products: upstreams.ProductMap{{Product: Product, VendorID: ItemID}},
	})
	if err != nil {
		srv.Close()
		return nil, err
	}
	svc, err := gateway.New(gateway.Config{
		Store:        st,
		Master:       m,
		Sources:      map[string]upstreams.Source{Source: src},
		Products:     map[string]*gateway.Product{Product: {Name: Product, Sources: []string{Source}}},
		ProductOrder: []string{Product},
	})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &Fixture{Master: m, Service: svc, srv: srv}, nil
}

// Close stops the fixture's test server.
func (f *Fixture) Close() { f.srv.Close() }

// Fingerprint names the master secret without revealing it: a load records
// it, and one resumed under another secret is refused.
func (f *Fixture) Fingerprint() string { return f.Master.Hash("scaleload", "fingerprint")[:16] }

// digest is a hash of i under a label: the bytes every derived value of
// licence i is cut from.
func digest(label string, i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(append([]byte("licensegate-scaleload/"+label+"/"), b[:]...))
}

// Key is licence i's purchase code, as Envato shows it: a UUID.
func Key(i int) string {
	h := hex.EncodeToString(func() []byte { d := digest("key", i); return d[:16] }())
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Domain is the domain licence i's installation is on.
func Domain(i int) string { return fmt.Sprintf("shop%d.scale-bench.com", i) }

// Email is licence i's buyer's e-mail address (stored only as a keyed
// hash and sealed).
func Email(i int) string { return fmt.Sprintf("buyer.%d@mail.scale-bench.com", i) }

// Buyer is licence i's buyer's Envato username.
func Buyer(i int) string { return fmt.Sprintf("ThemeBuyer%d", i) }

// InstallationID is licence i's installation's id, shaped like the
// gateway's random ones.
func InstallationID(i int) string {
	d := digest("installation", i)
	return "ins_" + hex.EncodeToString(d[:12])
}

// LicenseID is the id the gateway derives for licence i's purchase code
// (gateway's licenseID: a keyed hash of the source and the canonical key).
func (f *Fixture) LicenseID(i int) string {
	canon, err := upstreams.UUIDKey(Key(i))
	if err != nil {
		panic(err) // Key is a UUID
	}
	return "lic_" + f.Master.Hash("license", Source, canon)[:32]
}

// State is licence i's state after its first activation: the licence as
// the gateway stores a freshly verified Envato sale (the purchase code
// sealed, the e-mail hashed and sealed, the first recheck scheduled within
// the default interval, the domain's leak sighting) and one active
// production installation. What an activation writes besides, and this
// does not: the installation.created event (an audit and an outbox entry,
// with Events) and the installation's refresh-token family, which live in
// keys of their own.
func (f *Fixture) State(i int, withEvent bool) *store.LicenseState {
	id := f.LicenseID(i)
	canon, _ := upstreams.UUIDKey(Key(i))
	domain, err := policy.NormalizeDomain(Domain(i))
	if err != nil {
		panic(err)
	}
	d := digest("state", i)
	jitter := float64(binary.BigEndian.Uint32(d[:4])) / (1 << 32)
	// bought over the last year, with Envato's six months of support
	support := Epoch.Add(-time.Duration(d[4])*36*time.Hour).AddDate(0, 6, 0)
	email := Email(i)
	lic := &store.License{
		ID: id, Product: Product, Source: Source, Type: "regular", LicensedTo: Buyer(i),
		SupportUntil: &support, Status: store.LicenseActive,
		KeyCiphertext: f.Master.Seal([]byte(canon), []byte(id)),
		VerifiedAt:    Epoch,
		EmailHash:     f.Service.EmailHash(email),
		EmailSealed:   f.Master.Seal([]byte(email), []byte("email|"+id)),
		Sightings:     []store.Sighting{{Kind: policy.SightDomain, Value: domain, At: Epoch}},
		CreatedAt:     Epoch, UpdatedAt: Epoch,
	}
	lic.NextCheckAt = policy.RecheckRules{}.FirstCheck(Epoch, nil, jitter)
	if su := support.Add(time.Minute); su.After(Epoch) && su.Before(lic.NextCheckAt) {
		lic.NextCheckAt = su // the gateway's dueWithDates: checked just after support ends
	}
	ip := fmt.Sprintf("198.51.%d.%d", d[5], d[6]%254+1)
	in := store.Installation{
		ID: InstallationID(i), LicenseID: id, Product: Product, Domain: domain,
		InstallClass: string(policy.Rules{}.Classify(domain, nil)), Status: store.InstallationActive,
		IP: ip, ClientIP: ip, HomeIP: ip, Family: base64.RawURLEncoding.EncodeToString(d[8:20]), Generation: 1,
		CreatedAt: Epoch, UpdatedAt: Epoch,
	}
	st := &store.LicenseState{License: lic, Installations: []store.Installation{in}}
	if withEvent {
		st.Events = []store.AuditEvent{{
			At: Epoch, Actor: gateway.ActorInstaller, Action: store.AuditInstallationCreated,
			LicenseID: id, InstallationID: in.ID, Detail: domain, ClientIP: ip, Product: Product, Source: Source,
		}}
	}
	return st
}

// Write stores licence i through the store's UpdateLicense, unless it is
// stored already (then nothing is written): written says which.
func (f *Fixture) Write(ctx context.Context, st store.Store, i int, withEvent bool) (written bool, err error) {
	_, err = st.UpdateLicense(ctx, f.LicenseID(i), func(cur *store.LicenseState) (*store.LicenseState, error) {
		if cur.License != nil {
			return nil, nil
		}
		written = true
		return f.State(i, withEvent), nil
	})
	return written, err
}
