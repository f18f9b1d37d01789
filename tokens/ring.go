package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
)

// KeyStore is the part of store.Store the key ring needs.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	AddSigningKey(ctx context.Context, k store.SigningKey, notBefore time.Time) ([]store.SigningKey, error)
}

// Algorithm is the JWS algorithm of every key the ring makes.
const Algorithm = "EdDSA"

// ErrNoKey means the ring has no key to sign with yet (the store could not
// be read).
var ErrNoKey = errors.New("no signing key loaded")

// Ring is the signing key ring: the newest key signs, every key still
// within its verification window verifies. Lookups do no I/O.
type Ring struct {
	store  KeyStore
	master *secret.Master
	now    func() time.Time

	// retention is how long a replaced key keeps verifying (the longest
	// access-token lifetime plus leeway); 0 keeps every key.
	retention time.Duration

	// reloadedAt bounds the reloads an unknown kid may cause (reloadMu).
	reloadMu   sync.Mutex
	reloadedAt time.Time

	mu      sync.RWMutex
	public  map[string]ed25519.PublicKey
	kid     string
	created time.Time // the current key's
	private ed25519.PrivateKey
	jwks    []byte
}

// NewRing returns an empty ring; call Load before use.
func NewRing(ks KeyStore, master *secret.Master, now func() time.Time) *Ring {
	if now == nil {
		now = time.Now
	}
	return &Ring{store: ks, master: master, now: now}
}

// Load reads the key ring from the store and creates the first key when the
// store has none.
func (r *Ring) Load(ctx context.Context) error {
	keys, err := r.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	if len(keys) == 0 {
		_, err := r.rotate(ctx, time.Second)
		return err
	}
	return r.install(keys)
}

// SetRetention sets how long a replaced key keeps verifying: tokens it
// signed expire within the access-token lifetime, so it need not outlive
// them. Call before Load.
func (r *Ring) SetRetention(d time.Duration) { r.retention = d }

// Loaded reports whether the ring can sign.
func (r *Ring) Loaded() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.private != nil
}

// Rotate makes a new key current. Tokens signed with earlier keys keep
// verifying.
//
// Instances that rotate at the same moment (a schedule) add one key
// between them: a key made less than a second ago stands.
func (r *Ring) Rotate(ctx context.Context) error {
	_, err := r.rotate(ctx, time.Second)
	return err
}

// RotateScheduled adds a key unless the store already holds one younger
// than maxAge (another instance rotated; its key is adopted), and reports
// whether this call added it. The age is judged inside the store's
// transaction, so instances with stale rings cannot both rotate.
func (r *Ring) RotateScheduled(ctx context.Context, maxAge time.Duration) (bool, error) {
	return r.rotate(ctx, maxAge)
}

// RotateNow makes a new key current even if one was made a moment ago (an
// author's explicit rotation), and returns its kid.
func (r *Ring) RotateNow(ctx context.Context) (string, error) {
	if _, err := r.rotate(ctx, 0); err != nil {
		return "", err
	}
	return r.CurrentKeyID(), nil
}

func (r *Ring) rotate(ctx context.Context, window time.Duration) (bool, error) {
	now := r.now()
	k, err := r.newKey(now)
	if err != nil {
		return false, err
	}
	keys, err := r.store.AddSigningKey(ctx, k, now.Add(-window))
	if err != nil {
		return false, fmt.Errorf("storing signing key: %w", err)
	}
	added := len(keys) > 0 && keys[len(keys)-1].ID == k.ID
	return added, r.install(keys)
}

func (r *Ring) newKey(now time.Time) (store.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("generating signing key: %w", err)
	}
	kid := now.UTC().Format("20060102T150405Z") + "-" + randomID(6)
	return store.SigningKey{
		ID:               kid,
		Algorithm:        Algorithm,
		PublicKey:        pub,
		SealedPrivateKey: r.master.Seal(priv.Seed(), []byte("signing-key:"+kid)),
		CreatedAt:        now,
	}, nil
}

// install replaces the in-memory ring with keys (oldest first).
func (r *Ring) install(keys []store.SigningKey) error {
	keys = r.verifying(keys)
	public := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		if k.Algorithm != Algorithm || len(k.PublicKey) != ed25519.PublicKeySize {
			continue
		}
		public[k.ID] = ed25519.PublicKey(k.PublicKey)
	}
	if len(keys) == 0 {
		return ErrNoKey
	}
	newest := keys[len(keys)-1]
	seed, err := r.master.Open(newest.SealedPrivateKey, []byte("signing-key:"+newest.ID))
	if err != nil {
		return fmt.Errorf("unsealing signing key %s (was the secret changed?): %w", newest.ID, err)
	}
	jwks, err := buildJWKS(keys)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.private != nil && newest.CreatedAt.Before(r.created) {
		// A snapshot read before a rotation this ring already installed
		// (keys are only ever added): keep the newer ring.
		return nil
	}
	r.public = public
	r.kid = newest.ID
	r.created = newest.CreatedAt
	r.private = ed25519.NewKeyFromSeed(seed)
	r.jwks = jwks
	return nil
}

// verifying drops keys replaced longer ago than the retention: every
// token they signed has expired.
func (r *Ring) verifying(keys []store.SigningKey) []store.SigningKey {
	if r.retention <= 0 || len(keys) < 2 {
		return keys
	}
	now := r.now()
	var out []store.SigningKey
	for i, k := range keys {
		if i == len(keys)-1 || now.Before(keys[i+1].CreatedAt.Add(r.retention)) {
			out = append(out, k)
		}
	}
	return out
}

// Keys returns the kids that verify, newest first.
func (r *Ring) Keys() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var set struct {
		Keys []jwk `json:"keys"`
	}
	_ = json.Unmarshal(r.jwks, &set)
	out := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// signer returns the current key.
func (r *Ring) signer() (string, ed25519.PrivateKey, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.private == nil {
		return "", nil, ErrNoKey
	}
	return r.kid, r.private, nil
}

// publicKey returns the verification key for kid.
func (r *Ring) publicKey(kid string) (ed25519.PublicKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.public[kid]
	return k, ok
}

// unknownKidReload is the least time between two reloads caused by a kid
// the ring does not hold, and unknownKidTimeout bounds one.
const (
	unknownKidReload  = time.Second
	unknownKidTimeout = 2 * time.Second
)

// publicKeyOrReload is publicKey that, for a kid it does not hold, reads
// the ring from the store once before giving up: another instance may have
// rotated a moment ago, and its change notice may be late or lost. Such
// reloads happen at most once per unknownKidReload, so a stream of forged
// kids costs the store one read a second.
func (r *Ring) publicKeyOrReload(kid string) (ed25519.PublicKey, bool) {
	if k, ok := r.publicKey(kid); ok {
		return k, true
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if k, ok := r.publicKey(kid); ok { // another caller just reloaded
		return k, true
	}
	now := r.now()
	if !r.reloadedAt.IsZero() && now.Sub(r.reloadedAt) < unknownKidReload {
		return nil, false
	}
	r.reloadedAt = now
	ctx, cancel := context.WithTimeout(context.Background(), unknownKidTimeout)
	defer cancel()
	keys, err := r.store.SigningKeys(ctx)
	if err != nil || len(keys) == 0 || r.install(keys) != nil {
		return nil, false
	}
	return r.publicKey(kid)
}

// CurrentKeyAge returns how long ago the current key was made (0 when
// none is loaded).
func (r *Ring) CurrentKeyAge() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.private == nil {
		return 0
	}
	return r.now().Sub(r.created)
}

// CurrentKeyID returns the kid new tokens are signed with.
func (r *Ring) CurrentKeyID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.kid
}

// JWKS returns the public keys as a JSON Web Key Set.
func (r *Ring) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.jwks
}

type jwk struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"`
	Use       string `json:"use"`
}

func buildJWKS(keys []store.SigningKey) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for i := len(keys) - 1; i >= 0; i-- { // newest first
		k := keys[i]
		set.Keys = append(set.Keys, jwk{
			KeyType: "OKP", Curve: "Ed25519", Algorithm: Algorithm, Use: "sig",
			KeyID: k.ID, X: base64.RawURLEncoding.EncodeToString(k.PublicKey),
		})
	}
	return json.Marshal(set)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
