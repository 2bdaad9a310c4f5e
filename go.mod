module github.com/kinescope-tools/tusproxy

go 1.26.8

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/tus/tusd/v2 v2.9.1
	go.etcd.io/bbolt v1.5.0
	golang.org/x/exp v0.0.0-20250106191152-7588d65b2ba8
)

require (
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
