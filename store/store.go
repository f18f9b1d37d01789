// Package store defines what licensegate persists and the Store interface
// both backends implement: embedded (bbolt, one instance) and redis (many
// instances). Records never hold a purchase code in plaintext: a licence is
// identified by a keyed hash of its source and code, and the code itself is
// kept only as AES-GCM ciphertext for background re-checks.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns, so callers can use errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable wraps every failure to reach the backend (I/O, network,
	// the backend's own timeout), as opposed to a record that is absent, a
	// rule that refused a change, or a caller that went away: a call whose
	// ctx the caller cancelled, or whose deadline passed, returns an error
	// that wraps ctx.Err() (context.Canceled or context.DeadlineExceeded)
	// and not ErrUnavailable, so a gone caller never counts as an outage.
	ErrUnavailable = errors.New("store unavailable")
	// ErrRefreshSpent means a refresh token is no longer its family's
	// current one: it was spent.
	ErrRefreshSpent = errors.New("refresh token already spent")
	// ErrConflict means an optimistic transaction kept losing races.
	ErrConflict = errors.New("too many concurrent updates")
)

// License statuses (SPEC section 8).
const (
	LicenseActive    = "active"
	LicenseFlagged   = "flagged"
	LicenseSuspended = "suspended"
	LicenseRevoked   = "revoked"
	LicenseExpired   = "expired"
)

// Installation statuses.
const (
	InstallationActive      = "active"
	InstallationDeactivated = "deactivated"
	InstallationCloned      = "cloned"
)

// License is what the gateway knows about one licence (one purchase code at
// one source).
//
// The stored JSON of License, Installation, RefreshFamily and SigningKey
// leaves a zero time out (omitzero; a record written before that holds
// "0001-01-01T00:00:00Z", which reads back as the same zero time): a
// licence's state is about a quarter smaller for it, and its size is what
// Redis memory per licence is made of (docs/scale.md). None of these
// structs is an API answer: the admin API, the console and the portal
// render views of their own.
type License struct {
	ID               string     `json:"id"`
	Product          string     `json:"product"`
	Source           string     `json:"source"`
	Type             string     `json:"type,omitempty"`
	LicensedTo       string     `json:"licensed_to,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	SupportUntil     *time.Time `json:"support_until,omitempty"`
	Retired          bool       `json:"retired,omitempty"`
	ActivationsLimit int        `json:"activations_limit,omitempty"` // 0: the product's
	Status           string     `json:"status"`
	// StatusBy says who set Status when it is not active: "source" (the
	// key's own source said so), "admin" or "recheck".
	StatusBy string `json:"status_by,omitempty"`
	Locked   bool   `json:"locked,omitempty"`
	// KeyCiphertext is the purchase code sealed with the master secret, so
	// the background re-check can ask the source again.
	KeyCiphertext []byte    `json:"key_ciphertext,omitempty"`
	VerifiedAt    time.Time `json:"verified_at"`
	NextCheckAt   time.Time `json:"next_check_at,omitzero"`
	LastMoveAt    time.Time `json:"last_move_at,omitzero"`
	// RefreshAskedAt is when a buyer or the product last asked for a
	// recheck now (status/refresh), for refresh_cooldown.
	RefreshAskedAt time.Time `json:"refresh_asked_at,omitzero"`
	// VendorID is the vendor's own id of the licence, for sources that
	// read a licence by id on a recheck (Keygen). Empty: none.
	VendorID string `json:"vendor_id,omitempty"`
	// Refs are the lookup terms of the vendor's other ids of the purchase
	// (RefTerm): the store indexes them (Finder), so that a webhook naming
	// an order finds its licence.
	Refs []string `json:"refs,omitempty"`
	// EmailHash is the buyer's e-mail address as a keyed hash (a lookup
	// term, EmailTerm), and EmailSealed the address sealed with the master
	// secret: the portal's e-mail sign-in. Empty: the source reports none.
	EmailHash   string `json:"email_hash,omitempty"`
	EmailSealed []byte `json:"email_sealed,omitempty"`
	// Recheck is what the background recheck keeps about its last checks.
	Recheck RecheckState `json:"recheck,omitzero"`
	// Fence is the highest lease token a write of this licence was made
	// under (see Fenced).
	Fence int64 `json:"fence,omitempty"`
	// Sightings are the distinct production domains activations were
	// attempted on and the client networks re-activations came from,
	// within the product's leak_threshold window (bounded: the gateway
	// keeps a few more than the threshold of each kind).
	Sightings []Sighting `json:"sightings,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Version increases with every write; backends use it for
	// compare-and-set.
	Version int64 `json:"version"`
	// Counted says the store has counted the licence in its status
	// counts (statuses.go), so its next write takes its share off before
	// adding the new one. The store sets it; a caller's value is ignored.
	Counted bool `json:"counted,omitempty"`
}

// RecheckState is the background recheck's memory of one licence (SPEC
// section 7); its NextCheckAt is License.NextCheckAt.
type RecheckState struct {
	// LastCheckAt is when the source was last asked, LastOutcome what it
	// answered (valid, invalid, unknown) and LastReason why, for invalid
	// (refunded, not_found, ...) and unknown (a cause safe to show: never
	// a code).
	LastCheckAt time.Time `json:"last_check_at,omitzero"`
	LastOutcome string    `json:"last_outcome,omitempty"`
	LastReason  string    `json:"last_reason,omitempty"`
	// Definitive counts consecutive definitive-invalid answers, the first
	// of them at FirstDefinitiveAt.
	Definitive        int       `json:"definitive,omitempty"`
	FirstDefinitiveAt time.Time `json:"first_definitive_at,omitzero"`
	// Unknown counts consecutive unknown answers (the backoff exponent).
	Unknown int `json:"unknown,omitempty"`
}

// Sighting is one distinct value (a domain or a client network) seen on a
// licence for leak detection, and when it was last seen.
type Sighting struct {
	Kind  string    `json:"kind"`
	Value string    `json:"value"`
	At    time.Time `json:"at"`
}

// Installation is one activated copy of a product on one domain.
type Installation struct {
	ID           string `json:"id"`
	LicenseID    string `json:"license_id"`
	Product      string `json:"product"`
	Domain       string `json:"domain"`
	InstallClass string `json:"install_class"`
	Status       string `json:"status"`
	Label        string `json:"label,omitempty"`
	IP           string `json:"ip,omitempty"`
	// ClientIP is the connection address of the last activation or
	// re-activation; HomeIP the one the installation is known from (its
	// creation, or a re-activation from that same network), empty on
	// records older than it (ClientIP then).
	ClientIP string `json:"client_ip,omitempty"`
	HomeIP   string `json:"home_ip,omitempty"`
	// ForeignUntil is set when a re-activation came from another network
	// than the home one: until then its tokens are admitted at the gate
	// but cannot deactivate or move the installation, and a re-activation
	// from the home network supersedes them. After it, unchallenged, that
	// network is the home one.
	ForeignUntil time.Time `json:"foreign_until,omitzero"`
	// ReclaimedAt is when a re-activation from the home network last
	// superseded a foreign one's tokens: for move_cooldown after it, no
	// other network may re-activate the installation (no ping-pong).
	ReclaimedAt time.Time `json:"reclaimed_at,omitzero"`
	// Family is the id of the refresh family its current tokens belong
	// to (empty on older records), so a re-activation, move or
	// deactivation that supersedes them deletes that family's record:
	// storage per installation stays O(1) however often it is reinstalled.
	Family string `json:"family,omitempty"`
	// Addons are the add-on licences attached to this installation (SPEC
	// section 14), in attach order; each also names this installation as
	// its installation's Base. The add-on's own installation is the
	// truth: a ref whose installation is no longer attached grants
	// nothing.
	Addons []AddonRef `json:"addons,omitempty"`
	// Base is, on an add-on licence's installation, the base product's
	// installation it is attached to (in licence BaseLicense): it holds a
	// slot of the add-on's licence while that installation is active.
	Base        string `json:"base,omitempty"`
	BaseLicense string `json:"base_license,omitempty"`
	// MarkedStaging says the buyer marked the installation a staging copy
	// (the portal): it counts as staging, within the licence's cap.
	MarkedStaging bool `json:"marked_staging,omitempty"`
	// Reactivations counts re-activations since ReactivationsSince (a
	// fixed window), from its own network and from others, to bound them.
	ReactivationsSince   time.Time `json:"reactivations_since,omitzero"`
	HomeReactivations    int       `json:"home_reactivations,omitempty"`
	ForeignReactivations int       `json:"foreign_reactivations,omitempty"`
	// Generation is bumped whenever every token issued so far must stop
	// working (deactivation, move, clone detection).
	Generation    int64     `json:"generation"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	LastSeenAt    time.Time `json:"last_seen_at,omitzero"`
	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	// Version is the product version the installation last reported at
	// the gate (X-Product-Version, ValidVersion), recorded with its last
	// seen; empty until it reports one.
	Version string `json:"version,omitempty"`
	// VersionCountedAs is where the store counts the installation in its
	// product's version counts: Version, VersionOther, or empty when it
	// is not counted (versions.go). The store sets it; a caller's value
	// is ignored.
	VersionCountedAs string `json:"version_counted_as,omitempty"`
}

// AddonRef names an add-on licence's installation attached to a base
// installation.
type AddonRef struct {
	LicenseID      string `json:"license_id"`
	InstallationID string `json:"installation_id"`
	Product        string `json:"product"`
}

// Persistence answers of a store that can lose data on a restart (Redis):
// see the Persistent interface.
const (
	PersistenceNone    = "none"
	PersistenceUnknown = "unknown"
)

// Persistent is implemented by stores whose durability is configured
// outside the gateway (Redis): Persistence names how data survives a
// restart, PersistenceNone when it does not.
type Persistent interface {
	Persistence(ctx context.Context) (string, error)
}

// Active reports whether the installation is admitted.
func (i *Installation) Active() bool { return i.Status == InstallationActive }

// LicenseState is a licence and all its installations: the unit that
// changes atomically. An installation left out of a state written is
// forgotten, index entry included (the audit log keeps its history).
type LicenseState struct {
	License       *License       // nil when the licence is not stored yet
	Installations []Installation // in creation order
	// Events are the audited changes this write makes (filled in by the
	// caller's fn). The store writes each as an audit entry and an outbox
	// entry in the same transaction as the state: a change is never
	// committed without its events, nor an event without its change. They
	// are not part of the stored state: a state read has none.
	Events []AuditEvent
	// Families are refresh families this write starts (an activation's
	// first refresh token), stored before UpdateLicense returns: in the
	// same transaction as the state where the backend has one (embedded:
	// one commit, one pair of fsyncs, for the installation and its
	// family), else right after the state is committed (Redis: a family's
	// key is in a slot of its own). Not part of the stored state either.
	Families []RefreshFamily
}

// Installation returns the installation with the given id, or nil.
func (s *LicenseState) Installation(id string) *Installation {
	for i := range s.Installations {
		if s.Installations[i].ID == id {
			return &s.Installations[i]
		}
	}
	return nil
}

// RefreshFamily is the one stored record of a refresh-token family (the
// tokens one activation or move started): the keyed hash of its current
// token and, so an honest retry or race within refresh_reuse_grace is not
// taken for a clone, the token it replaced with the answer that rotation
// gave. A rotation overwrites the record, so storage per family is O(1)
// whatever the number of refreshes. Tokens are known only by keyed hashes;
// the answer is sealed with the master secret.
type RefreshFamily struct {
	// ID is the family id, which every token of the family carries
	// (rt_<family>.<secret>); backends key the record by it.
	ID             string `json:"id"`
	InstallationID string `json:"installation_id"`
	LicenseID      string `json:"license_id"`
	// Generation is the installation's generation the family was issued
	// for; a bump revokes it.
	Generation int64 `json:"generation"`
	// Current is the keyed hash of the family's one unspent token.
	Current string `json:"current"`
	// Counter counts rotations: 0 for the token the family started with.
	Counter int64 `json:"counter"`
	// IssuedAt and ExpiresAt bound Current; the record may go a day after
	// ExpiresAt.
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Previous is the keyed hash of the token Current replaced, spent at
	// PreviousSpentAt; empty before the first rotation.
	Previous        string    `json:"previous,omitempty"`
	PreviousSpentAt time.Time `json:"previous_spent_at,omitzero"`
	// SealedSuccessor is the answer the rotation of Previous gave (Current's
	// token and its access token), sealed with the master secret, so
	// Previous presented again within the grace gets it again. Empty when
	// the grace is off.
	SealedSuccessor []byte `json:"sealed_successor,omitempty"`
	// Reissues counts the fresh pairs Previous got after the grace, while
	// Current was never used (a retry after a lost answer); bounded, so a
	// spent token copied to many sites is not a credential for ever.
	Reissues int `json:"reissues,omitempty"`
}

// SigningKey is one key of the token-signing key ring. The private key is
// sealed with the master secret.
type SigningKey struct {
	ID               string    `json:"kid"`
	Algorithm        string    `json:"alg"`
	PublicKey        []byte    `json:"public_key"`
	SealedPrivateKey []byte    `json:"sealed_private_key"`
	CreatedAt        time.Time `json:"created_at"`
	// RetiredAt is when the key stopped signing; it verifies until
	// RetiredAt plus the longest access-token lifetime.
	RetiredAt time.Time `json:"retired_at,omitzero"`
}

// Change announces that a licence (and possibly one of its installations)
// changed, so caches elsewhere drop what they hold.
type Change struct {
	LicenseID      string `json:"license_id,omitempty"`
	InstallationID string `json:"installation_id,omitempty"`
	// Keys announces a new signing key: instances reload their key ring.
	Keys bool `json:"keys,omitempty"`
	// Asked announces a licence queued for a check now
	// (Scheduler.AskCheck): the instance running the recheck wakes for it.
	Asked bool `json:"asked,omitempty"`
	// Resync says changes may have been missed (the feed reconnected):
	// subscribers drop everything they cached. Never published; a backend
	// makes it up for its own subscribers.
	Resync bool `json:"-"`
}

// Store is what the gateway needs from storage. Every method wraps
// backend failures in ErrUnavailable; one whose caller ended ctx returns
// ctx.Err() wrapped instead, having written nothing unless the write had
// committed already.
//
// Both backends also implement the author console's reads, reached with
// a type assertion: TermPager (the review queue, queue.go),
// AuditByLicense (a licence's audit timeline, timeline.go),
// StatusCounter (licences and installations by status, statuses.go) and
// OutboxCounter (the failed deliveries, outbox.go).
type Store interface {
	// LicenseState returns a licence and its installations. A licence not
	// stored yet is a state with a nil License, not an error.
	LicenseState(ctx context.Context, licenseID string) (*LicenseState, error)

	// UpdateLicense atomically applies fn to a licence's current state: fn
	// receives a copy it may modify and returns the state to write (or nil
	// to write nothing). Backends may call fn more than once when a
	// concurrent writer won; fn must therefore have no side effects. The
	// state written is returned. The returned state's Events are written
	// as audit and outbox entries in the same atomic write (see
	// LicenseState.Events).
	UpdateLicense(ctx context.Context, licenseID string, fn func(*LicenseState) (*LicenseState, error)) (*LicenseState, error)

	// InstallationLicense returns the licence id an installation belongs to.
	InstallationLicense(ctx context.Context, installationID string) (string, error)

	// PutRefreshFamily stores a new family's record (replacing any record
	// with its ID).
	PutRefreshFamily(ctx context.Context, f RefreshFamily) error
	// RefreshFamily returns a family's record, or ErrNotFound.
	RefreshFamily(ctx context.Context, id string) (*RefreshFamily, error)
	// RotateRefreshFamily atomically replaces the record of next.ID with
	// next if its Current is still current, and returns the record it
	// replaced. When another rotation came first it writes nothing and
	// returns ErrRefreshSpent with the stored record; ErrNotFound when there
	// is none.
	RotateRefreshFamily(ctx context.Context, current string, next RefreshFamily) (*RefreshFamily, error)
	// DeleteRefreshFamily deletes a family's record (none is no error).
	DeleteRefreshFamily(ctx context.Context, id string) error

	// SigningKeys returns the key ring, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey adds a key unless the newest stored key is newer than
	// notBefore (another instance rotated first); it returns the key ring
	// as stored afterwards.
	AddSigningKey(ctx context.Context, k SigningKey, notBefore time.Time) ([]SigningKey, error)

	// Idempotent returns the stored answer for an idempotency key, or
	// ErrNotFound.
	Idempotent(ctx context.Context, key string) ([]byte, error)
	// PutIdempotent stores an answer unless one is stored already, in which
	// case the stored one is returned.
	PutIdempotent(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, error)

	// Subscribe delivers changes made by any instance until ctx ends. A
	// slow subscriber may miss changes; callers bound staleness with a TTL.
	Subscribe(ctx context.Context) (<-chan Change, error)

	// RecordSeen raises each named installation's LastSeenAt to At (never
	// lowers it) and records the Version it reported, in one batch: the
	// gate's last-seen times (seen.go). A changed version moves the
	// installation in its product's version counts in the same atomic
	// write (versions.go). An installation or licence that is gone is
	// skipped. A last-seen time is not a change of standing: the licence's
	// Version stays and no change notice is published, so no instance's
	// status cache is dropped for it.
	RecordSeen(ctx context.Context, seen []Seen) error

	// AddQuota atomically adds each delta to its installation's counter
	// for its window and returns the totals after the additions, in the
	// order of deltas: what every instance has added (quota.go). A
	// window's counter goes some time after the window ends.
	AddQuota(ctx context.Context, deltas []QuotaDelta) ([]int64, error)

	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error

	// Ledger lists licences and keeps the audit log (ledger.go).
	Ledger
	// Finder finds licences by lookup term (lookup.go).
	Finder
	// Counters keeps the per-day counts the author console charts
	// (counters.go).
	Counters

	// Outbox holds the events waiting for delivery (outbox.go).
	Outbox
	// Scheduler claims due licences and keeps leases (scheduler.go).
	Scheduler
}
