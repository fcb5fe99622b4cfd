package httpx

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/internal/testutil"
)

func TestCatalogueCodesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	code := regexp.MustCompile(`^[a-z][a-z_]*[a-z]$`)
	for _, e := range Catalogue() {
		if seen[e.Code] {
			t.Errorf("code %q is declared twice", e.Code)
		}
		seen[e.Code] = true
		if !code.MatchString(e.Code) {
			t.Errorf("code %q is not snake_case", e.Code)
		}
		if e.Status < 400 || e.Status > 599 {
			t.Errorf("%s: status %d is not an error status", e.Code, e.Status)
		}
		if e.Message == "" {
			t.Errorf("%s: no default message", e.Code)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("the catalogue lists %d codes; the gateway answers with more", len(seen))
	}
}

// TestNoErrorCodeOutsideTheCatalogue reads every production Go file of the module: nothing but
// catalogue.go may build an Error from a status and a code, nor spell a JSON error code of its own.
func TestNoErrorCodeOutsideTheCatalogue(t *testing.T) {
	root := testutil.Root(t)
	jsonCode := regexp.MustCompile(`"code"\s*:\s*"`)
	errorTypes := map[string]bool{"Error": true, "httpx.Error": true, "errorDetail": true, "httpx.errorDetail": true}
	files := 0
	used := map[string]bool{} // catalogue entries referenced by production code
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if rel == filepath.Join("internal", "httpx", "catalogue.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if exprName(n.X) == "httpx" {
					used[n.Sel.Name] = true
				}
			case *ast.Ident:
				if f.Name.Name == "httpx" {
					used[n.Name] = true
				}
			case *ast.CallExpr:
				if name := exprName(n.Fun); name == "def" && f.Name.Name == "httpx" || name == "httpx.def" {
					t.Errorf("%s: declares an error outside the catalogue", fset.Position(n.Pos()))
				}
			case *ast.CompositeLit:
				if !errorTypes[exprName(n.Type)] {
					return true
				}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok || exprName(kv.Key) != "Code" {
						continue
					}
					if _, literal := kv.Value.(*ast.BasicLit); literal {
						t.Errorf("%s: an error code spelled outside the catalogue", fset.Position(kv.Pos()))
					}
				}
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				if s, err := strconv.Unquote(n.Value); err == nil && jsonCode.MatchString(s) {
					t.Errorf("%s: a JSON error code written by hand: %.60q", fset.Position(n.Pos()), s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files under %s; the module has more", files, root)
	}
	// And no entry is dead: each is returned from somewhere.
	cat, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "internal", "httpx", "catalogue.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	for _, d := range cat.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				if !strings.HasPrefix(name.Name, "Err") {
					continue
				}
				entries++
				if !used[name.Name] {
					t.Errorf("catalogue entry %s is used nowhere: remove it", name.Name)
				}
			}
		}
	}
	if entries != len(Catalogue()) {
		t.Errorf("catalogue.go declares %d Err entries; Catalogue() holds %d", entries, len(Catalogue()))
	}
}

// TestDocumentedErrorsAreCatalogued: every "`404 some_code`" the documents promise is an entry of
// the catalogue with that status.
func TestDocumentedErrorsAreCatalogued(t *testing.T) {
	root := testutil.Root(t)
	byCode := map[string]int{}
	for _, e := range Catalogue() {
		byCode[e.Code] = e.Status
	}
	promise := regexp.MustCompile("`([0-9]{3}) ([a-z_]+)`")
	found := 0
	for _, doc := range []string{"README.md", "SECURITY.md", "RELIABILITY.md"} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range promise.FindAllStringSubmatch(string(b), -1) {
			found++
			status, code := m[1], m[2]
			got, ok := byCode[code]
			switch {
			case !ok:
				t.Errorf("%s promises %s %s, which is not in the catalogue", doc, status, code)
			case strconv.Itoa(got) != status:
				t.Errorf("%s promises %s %s; the catalogue says %d", doc, status, code, got)
			}
		}
	}
	if found == 0 {
		t.Fatal("no documented error found: the pattern no longer matches the documents")
	}
}

func exprName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprName(e.X) + "." + e.Sel.Name
	case *ast.StarExpr:
		return exprName(e.X)
	}
	return ""
}
