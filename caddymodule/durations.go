package caddymodule

import (
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
)

// checkDuration refuses a set duration below policy.MinDuration and warns
// once about one below its option's floor (policy.CheckDuration).
func checkDuration(logger *zap.Logger, scope, option string, d time.Duration) error {
	warning, floor, err := policy.CheckDuration(scope, option, d)
	if warning != "" && logger != nil {
		logger.Warn(warning, zap.String("option", option), zap.Duration("value", d), zap.Duration("floor", floor))
	}
	return err
}
