package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cofferhq/coffer/apierr"
)

// epoch is a timestamp on the wire: seconds since the epoch with
// millisecond precision, as the AWS JSON protocol sends it. Zero is omitted
// by omitempty.
type epoch int64

func (e epoch) MarshalJSON() ([]byte, error) {
	ms := int64(e)
	return []byte(fmt.Sprintf("%d.%03d", ms/1000, ms%1000)), nil
}

// decode parses a request body into in. An empty body is {}. Unknown
// members are ignored and null is absent, as AWS does; a body that is not a
// JSON object or has a member of the wrong type is a SerializationException.
func decode(body []byte, in any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	err := json.Unmarshal(body, in)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return apierr.New(apierr.Serialization, "The request body must be a JSON object.")
		}
		return apierr.Newf(apierr.Serialization, "Member %s has the wrong type: expected %s, got a JSON %s.", te.Field, typeName(te.Type.String()), te.Value)
	case errors.As(err, &se):
		return apierr.Newf(apierr.Serialization, "The request body is not valid JSON: %v (at byte %d).", se, se.Offset)
	}
	return apierr.Newf(apierr.Serialization, "The request body could not be decoded: %v.", err)
}

func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "[]uint8"):
		return "a base64 string"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "a list"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "int"):
		return "an integer"
	}
	return "an object"
}

// validator collects model-constraint violations into one
// ValidationException, in AWS's wording.
type validator struct {
	errs []string
	// secretID is checked against AWS's name rule once the model
	// constraints hold (err).
	secretID *string
}

func (v *validator) add(value *string, path, constraint string) {
	if value == nil {
		v.errs = append(v.errs, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: %s", path, constraint))
		return
	}
	shown := *value
	if len(shown) > 64 {
		shown = shown[:64] + "..."
	}
	v.errs = append(v.errs, fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: %s", shown, path, constraint))
}

func (v *validator) required(value *string, path string) bool {
	if value == nil {
		v.add(nil, path, "Member must not be null")
		return false
	}
	return true
}

// length checks a string's length in characters.
func (v *validator) length(value *string, path string, min, max int) {
	if value == nil {
		return
	}
	n := utf8.RuneCountInString(*value)
	if n < min {
		v.add(value, path, fmt.Sprintf("Member must have length greater than or equal to %d", min))
	} else if n > max {
		v.add(value, path, fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// sensitive checks a secret value's size in bytes without echoing it.
func (v *validator) sensitive(present bool, size int, path string) {
	if !present {
		return
	}
	if size < 1 {
		v.errs = append(v.errs, fmt.Sprintf("Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", path))
	} else if size > maxValueBytes {
		v.errs = append(v.errs, fmt.Sprintf("Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d bytes (got %d)", path, maxValueBytes, size))
	}
}

func (v *validator) intRange(value *int64, path string, min, max int64) {
	if value == nil {
		return
	}
	s := fmt.Sprint(*value)
	if *value < min {
		v.add(&s, path, fmt.Sprintf("Member must have value greater than or equal to %d", min))
	} else if *value > max {
		v.add(&s, path, fmt.Sprintf("Member must have value less than or equal to %d", max))
	}
}

// err reports the model-constraint violations; if there are none, a
// SecretId of characters no secret name or ARN can hold is AWS's "Invalid
// name" ValidationException, in every operation that takes one.
func (v *validator) err() error {
	switch len(v.errs) {
	case 0:
		if v.secretID != nil && !validSecretID(*v.secretID) {
			return apierr.New(apierr.Validation, apierr.MsgInvalidName)
		}
		return nil
	case 1:
		return apierr.New(apierr.Validation, "1 validation error detected: "+v.errs[0])
	}
	return apierr.Newf(apierr.Validation, "%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))
}

const maxValueBytes = 65536
