package spacetime

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ModulePath is the import path the generated code and the guest SDK use.
const ModulePath = "github.com/spacetime-go/spacetime"

//go:embed abi/*.go modules/go/stdb/*.go
var sdkFiles embed.FS

// SDKFiles returns the guest SDK's Go sources (no tests), keyed by their path
// inside the module (such as "abi/types.go"), in a stable order.
func SDKFiles() (map[string][]byte, []string, error) {
	files := map[string][]byte{}
	var names []string
	err := fs.WalkDir(sdkFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") || path.Ext(p) != ".go" {
			return err
		}
		b, err := sdkFiles.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = b
		names = append(names, p)
		return nil
	})
	sort.Strings(names)
	return files, names, err
}

// SDKHash identifies the embedded SDK sources: a project's copy is refreshed
// when it differs, so its generated code and its SDK always match the CLI.
func SDKHash() (string, error) {
	files, names, err := SDKFiles()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(files[n])
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
