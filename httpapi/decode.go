package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/licensegate/licensegate/gateway"
)

// MaxBody is the largest request body accepted (SPEC section 4).
const MaxBody = 64 << 10

// maxField bounds any single form or JSON field.
const maxField = 4096

// ReadForm reads a JSON or form body into a flat map of string fields.
// Only string values are accepted in JSON.
func ReadForm(r *http.Request) (map[string]string, error) {
	if r.ContentLength > MaxBody {
		return nil, &gateway.Error{Code: gateway.CodeRequestTooLarge, Detail: "The request body is larger than 64 KiB."}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, &gateway.Error{Code: gateway.CodeRequestTimeout, Detail: "The request body took too long to arrive.", Cause: err}
	}
	if err != nil {
		return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The request body could not be read.", Cause: err}
	}
	if len(body) > MaxBody {
		return nil, &gateway.Error{Code: gateway.CodeRequestTooLarge, Detail: "The request body is larger than 64 KiB."}
	}
	return decodeBody(r.Header.Get("Content-Type"), body)
}

// decodeBody parses body by its media type; none means a form.
func decodeBody(contentType string, body []byte) (map[string]string, error) {
	mt := "application/x-www-form-urlencoded"
	var params map[string]string
	if contentType != "" {
		parsed, ps, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, &gateway.Error{Code: gateway.CodeUnsupportedMedia, Detail: "Send application/json, application/x-www-form-urlencoded or multipart/form-data."}
		}
		mt = parsed
		params = ps
	}
	// PHP installers often post json_encode(...) through CURLOPT_POSTFIELDS
	// without a Content-Type, which curl sends as a form: no form starts
	// with "{", so such a body is read as the JSON it is.
	if mt == "application/x-www-form-urlencoded" && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		mt = "application/json"
	}
	var fields map[string]string
	var err error
	switch mt {
	case "application/json":
		fields, err = decodeJSON(body)
	case "application/x-www-form-urlencoded":
		fields, err = decodeURLForm(body)
	case "multipart/form-data":
		// PHP's curl posts an array given to CURLOPT_POSTFIELDS this way.
		fields, err = decodeMultipart(body, params["boundary"])
	default:
		return nil, &gateway.Error{Code: gateway.CodeUnsupportedMedia, Detail: "Send application/json, application/x-www-form-urlencoded or multipart/form-data."}
	}
	if err != nil {
		return nil, err
	}
	for k, v := range fields {
		if len(v) > maxField {
			return nil, gateway.Validation(k, "is too long")
		}
	}
	return fields, nil
}

func decodeJSON(body []byte) (map[string]string, error) {
	if len(body) == 0 {
		return map[string]string{}, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The request body is not a valid JSON object.", Cause: err}
	}
	fields := make(map[string]string, len(raw))
	bad := map[string][]string{}
	for k, v := range raw {
		if string(v) == "null" { // an absent optional field
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			bad[k] = append(bad[k], "must be a string")
			continue
		}
		fields[k] = s
	}
	if len(bad) > 0 {
		return nil, gateway.Invalid(bad)
	}
	return fields, nil
}

func decodeURLForm(body []byte) (map[string]string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The form body could not be parsed.", Cause: err}
	}
	fields := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) > 1 {
			return nil, gateway.Validation(k, "is given more than once")
		}
		fields[k] = v[0]
	}
	return fields, nil
}

// activateRequest builds an activation from decoded fields; purchase_code
// is an alias of license_key. Installers often send both, one of them
// empty: an empty (or blank) one is ignored, and only two different
// non-empty keys conflict.
func activateRequest(f map[string]string) (gateway.ActivateRequest, error) {
	key := strings.TrimSpace(f["license_key"])
	if pc := strings.TrimSpace(f["purchase_code"]); pc != "" {
		if key != "" && pc != key {
			return gateway.ActivateRequest{}, gateway.Validation("purchase_code", "differs from license_key; send one of them")
		}
		key = pc
	}
	return gateway.ActivateRequest{Key: key, Domain: f["domain"], IP: f["ip"], Product: f["product"], Label: f["label"]}, nil
}

var ErrNoBearer = errors.New("no bearer token")

// decodeMultipart reads the text fields of a multipart form (the body is
// already bounded by MaxBody). A file part is refused: no endpoint takes one.
func decodeMultipart(body []byte, boundary string) (map[string]string, error) {
	if boundary == "" {
		return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The multipart body has no boundary."}
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The multipart body could not be parsed.", Cause: err}
		}
		name := part.FormName()
		if name == "" || part.FileName() != "" {
			return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The multipart body may hold only named text fields."}
		}
		if _, dup := fields[name]; dup {
			return nil, gateway.Validation(name, "is given more than once")
		}
		value, err := io.ReadAll(part)
		if err != nil {
			return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The multipart body could not be parsed.", Cause: err}
		}
		fields[name] = string(value)
	}
}
