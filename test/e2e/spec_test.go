package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// specDir holds copies of the published Microsoft.ContainerInstance specs
// and their examples (internal/arm/containerinstance/testdata).
var specDir = filepath.Join("..", "..", "internal", "arm", "containerinstance", "testdata")

// publishedSpec is one api-version's published swagger: its operations
// (with the examples x-ms-examples names for each) and its definitions as
// OpenAPI 3 schemas, to validate response bodies with.
type publishedSpec struct {
	version string
	ops     []*specOp
	schemas openapi3.Schemas
}

// specOp is one operation of the swagger.
type specOp struct {
	id, method, path string
	params           []specParam
	// responses maps each documented success status to the definition
	// its body has ("" when it has none).
	responses   map[int]string
	longRunning bool
	// examples maps x-ms-examples names to example file names.
	examples map[string]string
}

// specParam is one parameter of an operation.
type specParam struct {
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
	Ref      string `json:"$ref"`
}

// publishedExample is one example file of a version, with the operation
// x-ms-examples maps it to.
type publishedExample struct {
	version string
	name    string // the x-ms-examples key
	file    string // the file's base name
	op      *specOp
	// params are the example's "parameters"; responses its documented
	// answers by status.
	params    map[string]json.RawMessage
	responses map[int]json.RawMessage
	// missing: x-ms-examples references the file, but it is not published.
	missing bool
}

// key names the example as "<version>/<file>".
func (e *publishedExample) key() string { return e.version + "/" + e.file }

// loadSpec reads the swagger of ver. x-ms-secret properties are made
// optional in the schemas: the swagger marks some required (LogAnalytics
// workspaceKey) though the service never returns them.
func loadSpec(t *testing.T, ver string) *publishedSpec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(specDir, "specs", "containerInstance-"+ver+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]specParam                  `json:"parameters"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sp := &publishedSpec{version: ver}
	for path, item := range doc.Paths {
		var shared []specParam
		if p, ok := item["parameters"]; ok {
			_ = json.Unmarshal(p, &shared)
		}
		for method, rawOp := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				OperationID string      `json:"operationId"`
				Parameters  []specParam `json:"parameters"`
				LongRunning bool        `json:"x-ms-long-running-operation"`
				Examples    map[string]struct {
					Ref string `json:"$ref"`
				} `json:"x-ms-examples"`
				Responses map[string]struct {
					Schema *struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatalf("%s %s %s: %v", ver, method, path, err)
			}
			o := &specOp{id: op.OperationID, method: strings.ToUpper(method), path: path, longRunning: op.LongRunning,
				responses: map[int]string{}, examples: map[string]string{}}
			for _, p := range append(slices.Clone(shared), op.Parameters...) {
				if p.Ref != "" {
					g, ok := doc.Parameters[strings.TrimPrefix(p.Ref, "#/parameters/")]
					if !ok {
						t.Fatalf("%s %s: parameter %s not defined", ver, o.id, p.Ref)
					}
					p = g
				}
				o.params = append(o.params, p)
			}
			for code, r := range op.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					continue // default: the error envelope
				}
				o.responses[n] = ""
				if r.Schema != nil {
					o.responses[n] = strings.TrimPrefix(r.Schema.Ref, "#/definitions/")
				}
			}
			for name, ref := range op.Examples {
				o.examples[name] = filepath.Base(ref.Ref)
			}
			sp.ops = append(sp.ops, o)
		}
	}
	sort.Slice(sp.ops, func(i, j int) bool { return sp.ops[i].id < sp.ops[j].id })

	var doc2 openapi2.T
	if err := json.Unmarshal(raw, &doc2); err != nil {
		t.Fatal(err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		t.Fatal(err)
	}
	sp.schemas = doc3.Components.Schemas
	secret := secretProperties(t)
	for name, s := range sp.schemas {
		if s.Value == nil {
			continue
		}
		s.Value.Required = slices.DeleteFunc(slices.Clone(s.Value.Required), func(prop string) bool {
			return secret[name+"."+prop]
		})
	}
	// The validator must be able to say no: a group whose containers are
	// not an array, a list without value items of the right shape.
	get := sp.op(t, "ContainerGroups_Get")
	for _, bad := range []string{`{"properties":{"containers":"web","osType":"Linux"}}`, `{"properties":{"containers":[],"osType":7}}`} {
		if sp.validate(get, 200, []byte(bad)) == "" {
			t.Fatalf("%s: schema validation accepts %s", ver, bad)
		}
	}
	return sp
}

// secretProperties are the "Definition.property" names any published
// version marks x-ms-secret. 2021-03-01 marks none, though its
// LogAnalytics.workspaceKey is the same secret 2023-05-01 marks.
func secretProperties(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(specDir, "specs", "*.json"))
	out := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Definitions map[string]struct {
				Properties map[string]struct {
					Secret bool `json:"x-ms-secret"`
				} `json:"properties"`
			} `json:"definitions"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for def, d := range doc.Definitions {
			for prop, p := range d.Properties {
				if p.Secret {
					out[def+"."+prop] = true
				}
			}
		}
	}
	if !out["LogAnalytics.workspaceKey"] {
		t.Fatal("no published spec marks LogAnalytics.workspaceKey x-ms-secret")
	}
	return out
}

// op finds an operation by its operationId.
func (sp *publishedSpec) op(t *testing.T, id string) *specOp {
	t.Helper()
	for _, o := range sp.ops {
		if o.id == id {
			return o
		}
	}
	t.Fatalf("%s has no operation %s", sp.version, id)
	return nil
}

// examples maps every example x-ms-examples names to its operation, and
// checks that every published example file of the version is named by one.
func (sp *publishedSpec) examples(t *testing.T) []*publishedExample {
	t.Helper()
	dir := filepath.Join(specDir, "examples", sp.version)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", dir, err)
	}
	named := map[string]bool{}
	var out []*publishedExample
	for _, o := range sp.ops {
		for name, file := range o.examples {
			ex := &publishedExample{version: sp.version, name: name, file: file, op: o, responses: map[int]json.RawMessage{}}
			raw, err := os.ReadFile(filepath.Join(dir, file))
			if os.IsNotExist(err) {
				ex.missing = true
				out = append(out, ex)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Parameters map[string]json.RawMessage `json:"parameters"`
				Responses  map[string]struct {
					Body json.RawMessage `json:"body"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("%s: %v", ex.key(), err)
			}
			ex.params = doc.Parameters
			for code, r := range doc.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("%s: response %q", ex.key(), code)
				}
				ex.responses[n] = r.Body
			}
			named[file] = true
			out = append(out, ex)
		}
	}
	for _, f := range files {
		if !named[filepath.Base(f)] {
			t.Errorf("%s/%s is named by no operation's x-ms-examples", sp.version, filepath.Base(f))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// documented reports whether status is a success the operation (swagger or
// example) lists.
func (e *publishedExample) documented(status int) bool {
	if _, ok := e.op.responses[status]; ok {
		return true
	}
	_, ok := e.responses[status]
	return ok
}

// documentedCodes lists the documented successes, for messages.
func (e *publishedExample) documentedCodes() []int {
	var out []int
	for c := range e.op.responses {
		out = append(out, c)
	}
	for c := range e.responses {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

// param is the example's value of a string parameter.
func (e *publishedExample) param(name string) string {
	var s string
	if raw, ok := e.params[name]; ok && json.Unmarshal(raw, &s) != nil {
		s = string(raw) // a number (tail)
	}
	return s
}

// exampleRequest is the HTTP request an example stands for.
type exampleRequest struct {
	method string
	path   string // with the query
	body   []byte
}

// request builds the example's request from the operation's parameters:
// path parameters (renamed by rename, which sees each parameter's name and
// the example's value), query parameters and the body (replaced by body
// when it is not nil).
func (e *publishedExample) request(rename func(param, value string) string, body []byte) exampleRequest {
	path := e.op.path
	q := url.Values{}
	var out []byte
	for _, p := range e.op.params {
		raw, ok := e.params[p.Name]
		switch p.In {
		case "path":
			v := rename(p.Name, e.param(p.Name))
			path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(v), 1)
		case "query":
			if ok {
				q.Set(p.Name, e.param(p.Name))
			}
		case "body":
			out = raw
		}
	}
	if body != nil {
		out = body
	}
	if q.Get("api-version") == "" {
		q.Set("api-version", e.version)
	}
	return exampleRequest{method: e.op.method, path: path + "?" + q.Encode(), body: out}
}

// validate checks a response body against the operation's schema for
// status and returns what is wrong ("" when it validates).
func (sp *publishedSpec) validate(op *specOp, status int, body []byte) string {
	name, ok := op.responses[status]
	if !ok {
		return fmt.Sprintf("status %d is not documented for %s", status, op.id)
	}
	if name == "" {
		if len(strings.TrimSpace(string(body))) != 0 {
			return fmt.Sprintf("%s %d documents no body, got %s", op.id, status, body)
		}
		return ""
	}
	ref := sp.schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Sprintf("%s has no definition %s", sp.version, name)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Sprintf("body is not JSON (%v): %s", err, body)
	}
	if err := ref.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Sprintf("body does not validate against %s: %v", name, err)
	}
	return ""
}
