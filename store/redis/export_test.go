package redis

import (
	"context"
	"time"
)

// Internals the external tests check against a live server.

var KeySlot = keySlot

// IndexDue runs dueScript as UpdateLicense does, so a test can replay an
// index write that arrives late.
func IndexDue(ctx context.Context, s *Store, licenseID string, version int64, at time.Time) (int64, error) {
	return dueScript.Run(ctx, s.client, []string{s.dueKey(), s.dueVersionsKey()}, licenseID, version, dueScore(at)).Int64()
}

// CountVersion runs versionsScript as a write's adjustment of one
// version does, so a test can replay adjustments out of order.
func CountVersion(ctx context.Context, s *Store, product, version string, n int64) error {
	return versionsScript.Run(ctx, s.client, []string{s.versionsKey(product)}, version, n).Err()
}

// InstallBucketKey is the installation index's bucket of id.
func InstallBucketKey(s *Store, id string) string { return s.installBucketKey(id) }
