// Package storespec reads the description of the state store,
// TUSPROXY_STORE: "memory", "bolt:PATH" or a redis:// (rediss:// for TLS)
// URL. It is the one parser: the configuration checks a spec with it before
// anything listens, and the program opens the store it names. It imports
// nothing heavier than net/url, so the configuration does not depend on the
// stores themselves.
package storespec

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind is the kind of store a spec names.
type Kind int

// The kinds of store.
const (
	// Memory keeps records in the process; they are lost on restart.
	Memory Kind = iota + 1
	// Bolt keeps records in a bbolt file on local disk.
	Bolt
	// Redis keeps records in Redis, shared by every replica.
	Redis
)

// Spec is a parsed store spec.
type Spec struct {
	Kind Kind
	// Path is the bbolt file of a Bolt store.
	Path string
	// URL is the URL of a Redis store. It may hold a password: never log it.
	URL string
}

// supported ends the message for a spec naming no store this program has.
const supported = "is not a supported store (use memory, bolt:PATH or redis://host:port/db)"

// Parse reads a store spec. Its errors read after the name of the setting
// ("-store (TUSPROXY_STORE): ..."); they never quote a spec that may be a URL
// with a password.
func Parse(spec string) (Spec, error) {
	switch {
	case spec == "memory":
		return Spec{Kind: Memory}, nil
	case strings.HasPrefix(spec, "bolt:"):
		path := strings.TrimPrefix(spec, "bolt:")
		if strings.TrimSpace(path) == "" {
			return Spec{}, errors.New(`"bolt:" needs a file path, such as bolt:/var/lib/tusproxy/state.db`)
		}
		return Spec{Kind: Bolt, Path: path}, nil
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		// Never quoted: a redis URL usually carries a password.
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" || u.Opaque != "" {
			return Spec{}, errors.New("is not a valid redis:// URL (redis://[:password@]host:port/db)")
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			if _, err := strconv.ParseUint(db, 10, 8); err != nil {
				return Spec{}, errors.New("has a database that is not a number (redis://host:port/0)")
			}
		}
		return Spec{Kind: Redis, URL: spec}, nil
	case strings.Contains(spec, "://"):
		// Another URL: it may carry a password too.
		return Spec{}, errors.New(supported)
	}
	return Spec{}, fmt.Errorf("%q "+supported, spec)
}
