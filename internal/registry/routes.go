package registry

import (
	"net/http"
	"regexp"
	"strings"
)

// routeName names an endpoint of the OCI (/v2/) or ACR (/acr/v1/) API.
type routeName int

const (
	routeBase        routeName = iota // /v2/
	routeCatalog                      // /v2/_catalog
	routeBlob                         // /v2/<repo>/blobs/<digest>
	routeUploadStart                  // /v2/<repo>/blobs/uploads/
	routeUpload                       // /v2/<repo>/blobs/uploads/<id>
	routeManifest                     // /v2/<repo>/manifests/<reference>
	routeTags                         // /v2/<repo>/tags/list
	routeReferrers                    // /v2/<repo>/referrers/<digest>

	acrCatalog   // /acr/v1/_catalog
	acrRepo      // /acr/v1/<repo>
	acrTags      // /acr/v1/<repo>/_tags
	acrTag       // /acr/v1/<repo>/_tags/<tag>
	acrManifests // /acr/v1/<repo>/_manifests
	acrManifest  // /acr/v1/<repo>/_manifests/<digest>
)

// route is a parsed request path.
type route struct {
	name routeName
	repo string // repository name, may contain '/'
	ref  string // digest, tag or upload id, by route
}

// call is one authenticated request to a handler: its route and what its
// credentials allow.
type call struct {
	route
	grant grant
}

// handlerFunc serves one method of one route.
type handlerFunc func(*Registry, http.ResponseWriter, *http.Request, *call) error

// endpoint is what a method on a route does and which actions it needs on
// the route's repository (nil: any valid credential; for catalog routes the
// registry:catalog:* scope).
type endpoint struct {
	handle  handlerFunc
	actions []string
}

var (
	pull          = []string{ActionPull}
	pushPull      = []string{ActionPush, ActionPull}
	del           = []string{ActionDelete}
	metadataRead  = []string{ActionMetadataRead}
	metadataWrite = []string{ActionMetadataWrite}
	catalog       = []string{ActionAll}
)

// routes is the route table of both APIs.
var routes = map[routeName]map[string]endpoint{
	routeBase:        {"GET": {(*Registry).base, nil}, "HEAD": {(*Registry).base, nil}},
	routeCatalog:     {"GET": {(*Registry).listCatalog, catalog}},
	routeBlob:        {"GET": {(*Registry).getBlob, pull}, "HEAD": {(*Registry).getBlob, pull}, "DELETE": {(*Registry).deleteBlob, del}},
	routeUploadStart: {"POST": {(*Registry).startUpload, pushPull}},
	routeUpload: {
		"GET": {(*Registry).uploadStatus, pushPull}, "PATCH": {(*Registry).patchUpload, pushPull},
		"PUT": {(*Registry).completeUpload, pushPull}, "DELETE": {(*Registry).cancelUpload, pushPull},
	},
	routeManifest: {
		"GET": {(*Registry).getManifest, pull}, "HEAD": {(*Registry).getManifest, pull},
		"PUT": {(*Registry).putManifest, pushPull}, "DELETE": {(*Registry).deleteManifest, del},
	},
	routeTags:      {"GET": {(*Registry).listTags, pull}},
	routeReferrers: {"GET": {(*Registry).listReferrers, pull}},

	acrCatalog:   {"GET": {(*Registry).listCatalog, catalog}},
	acrRepo:      {"GET": {(*Registry).acrGetRepository, metadataRead}, "PATCH": {(*Registry).acrPatchRepository, metadataWrite}, "DELETE": {(*Registry).acrDeleteRepository, del}},
	acrTags:      {"GET": {(*Registry).acrListTags, metadataRead}},
	acrTag:       {"GET": {(*Registry).acrGetTag, metadataRead}, "PATCH": {(*Registry).acrPatchTag, metadataWrite}, "DELETE": {(*Registry).acrDeleteTag, del}},
	acrManifests: {"GET": {(*Registry).acrListManifests, metadataRead}},
	acrManifest:  {"GET": {(*Registry).acrGetManifest, metadataRead}, "PATCH": {(*Registry).acrPatchManifest, metadataWrite}},
}

// parsePath splits a decoded request path into its route. Repository names
// may contain slashes (or arrive as %2F, which the server has decoded), so
// paths are matched from their end.
func parsePath(path string) (route, bool) {
	if rest, ok := strings.CutPrefix(path, "/acr/v1/"); ok {
		return parseACRPath(rest)
	}
	if path == "/v2" {
		path = "/v2/"
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, false
	}
	switch rest {
	case "":
		return route{name: routeBase}, true
	case "_catalog":
		return route{name: routeCatalog}, true
	}
	s := strings.Split(rest, "/")
	n := len(s)
	repo := func(k int) string { return strings.Join(s[:n-k], "/") }
	switch {
	case n >= 3 && s[n-2] == "tags" && s[n-1] == "list":
		return route{name: routeTags, repo: repo(2)}, true
	case n >= 3 && s[n-2] == "manifests" && s[n-1] != "":
		return route{name: routeManifest, repo: repo(2), ref: s[n-1]}, true
	case n >= 3 && s[n-2] == "referrers" && s[n-1] != "":
		return route{name: routeReferrers, repo: repo(2), ref: s[n-1]}, true
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

// parseACRPath parses what follows /acr/v1/.
func parseACRPath(rest string) (route, bool) {
	if rest == "_catalog" {
		return route{name: acrCatalog}, true
	}
	s := strings.Split(rest, "/")
	n := len(s)
	repo := func(k int) string { return strings.Join(s[:n-k], "/") }
	switch {
	case rest == "":
		return route{}, false
	case n >= 2 && s[n-1] == "_tags":
		return route{name: acrTags, repo: repo(1)}, true
	case n >= 3 && s[n-2] == "_tags" && s[n-1] != "":
		return route{name: acrTag, repo: repo(2), ref: s[n-1]}, true
	case n >= 2 && s[n-1] == "_manifests":
		return route{name: acrManifests, repo: repo(1)}, true
	case n >= 3 && s[n-2] == "_manifests" && s[n-1] != "":
		return route{name: acrManifest, repo: repo(2), ref: s[n-1]}, true
	}
	return route{name: acrRepo, repo: rest}, true
}

// isCatalog reports whether the route lists the registry's repositories.
func (rt route) isCatalog() bool { return rt.name == routeCatalog || rt.name == acrCatalog }

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
