package gateway

import "github.com/licensegate/licensegate/upstreams"

// candidate is a source a key fits, with the key in that source's form.
type candidate struct {
	source    upstreams.Source
	key       string
	licenseID string
}

// candidates lists the sources whose key format fits, in configured order:
// the product's sources when a product is named, else every product's.
func (s *Service) candidates(rawKey, product string) ([]candidate, error) {
	key, err := upstreams.CleanKey(rawKey)
	if err != nil {
		return nil, &Error{Code: CodeInvalidKeyFormat, Detail: publicKeyFormat(err), Cause: err}
	}
	products := s.cfg.ProductOrder
	if product != "" {
		products = []string{product}
	}
	seen := map[string]bool{}
	var out []candidate
	for _, p := range products {
		for _, name := range s.product(p).Sources {
			if seen[name] {
				continue
			}
			seen[name] = true
			src := s.cfg.Sources[name]
			canon, err := src.CanonicalKey(key)
			if err != nil {
				continue
			}
			out = append(out, candidate{source: src, key: canon, licenseID: s.licenseID(name, canon)})
		}
	}
	if len(out) == 0 {
		return nil, &Error{Code: CodeInvalidKeyFormat, Detail: "This does not look like a licence key or purchase code for this product. Please check it and try again."}
	}
	return out, nil
}

// publicKeyFormat is a key-format error as the installer is shown it:
// what is wrong with the key, without the sentinel's own prefix.
func publicKeyFormat(err error) string {
	msg := err.Error()
	if i := len(upstreams.ErrKeyFormat.Error()) + 2; len(msg) > i {
		msg = msg[i:]
	}
	return "Invalid licence key: " + msg + "."
}
