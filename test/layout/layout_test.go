package layout

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/chatgate/chatgate/"

// root is the module's directory, two levels up from this package.
var root = filepath.Join("..", "..")

// TestREADMEPackageDiagramMatchesImports parses the imports of every package's non-test files and
// compares them, both ways, with the table under README's "Package diagram".
func TestREADMEPackageDiagramMatchesImports(t *testing.T) {
	actual := moduleImports(t)
	documented := readmeDiagram(t)
	if len(actual) < 20 {
		t.Fatalf("found only %d packages: is %s the module root?", len(actual), root)
	}
	for pkg, imports := range actual {
		want, ok := documented[pkg]
		if !ok {
			t.Errorf("package %s is not in README's package diagram; add:\n%s", pkg, line(pkg, imports))
			continue
		}
		if !slices.Equal(want, imports) {
			t.Errorf("README's package diagram says %s imports %v, it imports %v; write:\n%s", pkg, want, imports, line(pkg, imports))
		}
	}
	for pkg := range documented {
		if _, ok := actual[pkg]; !ok {
			t.Errorf("README's package diagram lists %s, which is not a package of the module", pkg)
		}
	}
}

func line(pkg string, imports []string) string {
	cell := "—"
	if len(imports) > 0 {
		cell = "`" + strings.Join(imports, "`, `") + "`"
	}
	return "| `" + pkg + "` | " + cell + " |"
}

// moduleImports maps each package directory (relative, with /) to the sorted module packages its
// non-test files import. A directory whose Go files are all tests is a package too.
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if _, ok := out[pkg]; !ok {
			out[pkg] = []string{}
		}
		if strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, imports := range out {
		slices.Sort(imports)
	}
	return out
}

// readmeDiagram reads the table under the "Package diagram" heading: "| `pkg` | `a`, `b` |", or "—".
func readmeDiagram(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			in = strings.TrimLeft(text, "# ") == "Package diagram"
			continue
		}
		if !in || !strings.HasPrefix(text, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(text, "| "), "|")
		if len(cells) != 2 {
			t.Fatalf("README package diagram: %q is not two cells", text)
		}
		pkg := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if _, dup := out[pkg]; dup {
			t.Errorf("README package diagram lists %s twice", pkg)
		}
		imports := []string{}
		if cell := strings.TrimSpace(cells[1]); cell != "—" {
			for _, dep := range strings.Split(cell, ",") {
				imports = append(imports, strings.Trim(strings.TrimSpace(dep), "`"))
			}
		}
		if !slices.IsSorted(imports) {
			t.Errorf("README package diagram: the imports of %s are not in order", pkg)
			slices.Sort(imports)
		}
		out[pkg] = imports
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal(`README has no "Package diagram" table`)
	}
	return out
}
