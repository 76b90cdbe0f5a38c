package registry

import (
	"net/http"
	"regexp"
	"strings"
)

// routeName names a /v2/ endpoint.
type routeName int

const (
	routeBase        routeName = iota // /v2/
	routeBlob                         // /v2/<repo>/blobs/<digest>
	routeUploadStart                  // /v2/<repo>/blobs/uploads/
	routeUpload                       // /v2/<repo>/blobs/uploads/<id>
	routeManifest                     // /v2/<repo>/manifests/<reference>
	routeTags                         // /v2/<repo>/tags/list
)

// route is a parsed /v2/ path.
type route struct {
	name routeName
	repo string // repository name, may contain '/'
	ref  string // digest, tag or upload id, by route
}

// endpoint is what a method on a route does and which repository actions it
// needs ("" for routeBase: any valid credential).
type endpoint struct {
	handle  func(*Registry, http.ResponseWriter, *http.Request, route) error
	actions []string
}

var (
	pull     = []string{ActionPull}
	pushPull = []string{ActionPush, ActionPull}
)

// routes is the /v2/ route table.
var routes = map[routeName]map[string]endpoint{
	routeBase: {
		http.MethodGet:  {(*Registry).base, nil},
		http.MethodHead: {(*Registry).base, nil},
	},
	routeBlob: {
		http.MethodGet:  {(*Registry).getBlob, pull},
		http.MethodHead: {(*Registry).getBlob, pull},
	},
	routeUploadStart: {
		http.MethodPost: {(*Registry).startUpload, pushPull},
	},
	routeUpload: {
		http.MethodGet:    {(*Registry).uploadStatus, pushPull},
		http.MethodPatch:  {(*Registry).patchUpload, pushPull},
		http.MethodPut:    {(*Registry).completeUpload, pushPull},
		http.MethodDelete: {(*Registry).cancelUpload, pushPull},
	},
	routeManifest: {
		http.MethodGet:  {(*Registry).getManifest, pull},
		http.MethodHead: {(*Registry).getManifest, pull},
		http.MethodPut:  {(*Registry).putManifest, pushPull},
	},
	routeTags: {
		http.MethodGet: {(*Registry).listTags, pull},
	},
}

// parseV2Path splits a decoded /v2/ path into its route. Repository names may
// contain slashes, so the path is matched from its end.
func parseV2Path(path string) (route, bool) {
	if path == "/v2" {
		path = "/v2/"
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "" {
		return route{name: routeBase}, true
	}
	s := strings.Split(rest, "/")
	n := len(s)
	repo := func(k int) string { return strings.Join(s[:n-k], "/") }
	switch {
	case n >= 3 && s[n-2] == "tags" && s[n-1] == "list":
		return route{name: routeTags, repo: repo(2)}, true
	case n >= 3 && s[n-2] == "manifests" && s[n-1] != "":
		return route{name: routeManifest, repo: repo(2), ref: s[n-1]}, true
	case n >= 4 && s[n-3] == "blobs" && s[n-2] == "uploads" && s[n-1] == "":
		return route{name: routeUploadStart, repo: repo(3)}, true
	case n >= 4 && s[n-3] == "blobs" && s[n-2] == "uploads":
		return route{name: routeUpload, repo: repo(3), ref: s[n-1]}, true
	case n >= 3 && s[n-2] == "blobs" && s[n-1] == "uploads": // no trailing slash
		return route{name: routeUploadStart, repo: repo(2)}, true
	case n >= 3 && s[n-2] == "blobs" && s[n-1] != "":
		return route{name: routeBlob, repo: repo(2), ref: s[n-1]}, true
	}
	return route{}, false
}

var (
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern        = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// validRepository reports whether name is an OCI repository name. ACR also
// limits the whole name to 256 characters.
func validRepository(name string) bool {
	return len(name) <= 256 && repositoryPattern.MatchString(name)
}

func validTag(tag string) bool { return tagPattern.MatchString(tag) }
