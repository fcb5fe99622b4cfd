package testutil

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Root returns the repository's root: the nearest directory above the test's working directory
// (its package's directory) that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory: the tests run inside the repository")
		}
		dir = parent
	}
}

// Path returns the path of a file of the repository, given from its root
// (Path(t, "testdata", "whatsapp") is the corpus' folder wherever the test runs).
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Root(t)}, elem...)...)
}

// Fixture returns the contents of a file of the repository, given from its root, failing the test
// when it cannot be read.
func Fixture(t testing.TB, elem ...string) []byte {
	t.Helper()
	path := Path(t, elem...)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture %s: %v", path, err)
	}
	return raw
}

// Fixtures returns, sorted, the files of the repository that the pattern (filepath.Match syntax,
// its last element) matches, failing the test when none does: a fixture folder that moved must
// not leave a test iterating over nothing.
func Fixtures(t testing.TB, elem ...string) []string {
	t.Helper()
	pattern := Path(t, elem...)
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("fixtures %s: %v", pattern, err)
	}
	if len(files) == 0 {
		t.Fatalf("no fixture matches %s", pattern)
	}
	sort.Strings(files)
	return files
}
