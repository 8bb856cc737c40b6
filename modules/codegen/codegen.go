package codegen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spacetime-go/spacetime/modules/schema"
)

// ErrCodegen is wrapped by errors about a schema the generator cannot turn
// into Go (for example two names that map to the same Go identifier).
var ErrCodegen = errors.New("cannot generate code")

// GoFileName is the file `spacetime generate` writes in a Go module directory.
const GoFileName = "spacetime_generated.go"

type options struct {
	pkg    string
	source string
	out    string
}

// Option configures generation.
type Option func(*options)

// WithPackage sets the Go package name of the generated file (default
// "main", which a wasm module needs; other packages get no main function).
func WithPackage(name string) Option { return func(o *options) { o.pkg = name } }

// WithSource sets the schema file name the generated header mentions.
func WithSource(name string) Option { return func(o *options) { o.source = name } }

// WithOutDir writes the generated file into dir instead of the module directory.
func WithOutDir(dir string) Option { return func(o *options) { o.out = dir } }

// GenerateDir parses dir/schema.spacetimedb and writes the Go module code
// to dir/spacetime_generated.go (or into WithOutDir's directory). It returns
// the path written. The file is only rewritten when its content changes, so
// build caches and file watchers are not disturbed needlessly.
func GenerateDir(dir string, opts ...Option) (string, error) {
	def, err := schema.ParseDir(dir)
	if err != nil {
		return "", err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	src, err := GenerateGo(def, append([]Option{WithSource(schema.FileName)}, opts...)...)
	if err != nil {
		return "", err
	}
	outDir := dir
	if o.out != "" {
		outDir = o.out
	}
	path := filepath.Join(outDir, GoFileName)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(src) {
		return path, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	return path, nil
}
