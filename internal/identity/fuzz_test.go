package identity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store/memory"
)

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"https://management.core.windows.net//.default openid offline_access profile",
		"https://containerregistry.azure.net/.default",
		"/.default", "openid", "", " \t", "a/.default b/.default", "x/.DEFAULT",
	} {
		f.Add(s)
	}
	s := &Service{clk: clock.Real{}}
	f.Fuzz(func(t *testing.T, scope string) {
		w := httptest.NewRecorder()
		q := &request{w: w, r: httptest.NewRequest(http.MethodPost, "/", nil), s: s}
		res, ok := q.parseScope(scope)
		if ok == (w.Code == http.StatusBadRequest) || (ok && w.Body.Len() > 0) {
			t.Fatalf("parseScope(%q) = %q, %v with response %d %s", scope, res, ok, w.Code, w.Body)
		}
		if ok && !strings.Contains(scope, res+"/.") && !strings.Contains(strings.ToLower(scope), strings.ToLower(res)+"/.default") {
			t.Fatalf("parseScope(%q) = %q: not taken from the scope", scope, res)
		}
	})
}

func FuzzVerify(f *testing.F) {
	s, err := New(Config{Store: memory.New(), KeyDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := s.IssueToken(f.Context(), DefaultClientID, AudienceARM, "127.0.0.1:7443")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add(strings.Replace(tok, ".", "..", 1))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token, AudienceARM)
		if (err == nil) != (token == tok) || (err == nil) != (c != nil) {
			t.Fatalf("Verify(%q) = %v, %v", token, c, err)
		}
	})
}
