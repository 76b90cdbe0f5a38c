package arm

import (
	"net/url"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
)

// Versions is the set of api-versions a resource type accepts.
type Versions struct {
	// Type names the resource type in error messages, e.g.
	// "containerGroups"; empty means the error is ARM's own
	// InvalidApiVersionParameter.
	Type string
	List []string
}

func (v *Versions) check(q url.Values) (string, error) {
	ver := q.Get("api-version")
	if ver == "" {
		return "", apierr.New(apierr.Invalid, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	for _, s := range v.List {
		if strings.EqualFold(s, ver) {
			return s, nil
		}
	}
	supported := strings.Join(v.List, ", ")
	if v.Type == "" {
		return "", apierr.New(apierr.Invalid, "InvalidApiVersionParameter", "The api-version '%s' is invalid. The supported versions are '%s'.", ver, supported)
	}
	return "", apierr.New(apierr.Invalid, "NoRegisteredProviderFound",
		"No registered resource provider found for location 'global' and API version '%s' for type '%s'. The supported api-versions are '%s'. The supported locations are 'any location'.", ver, v.Type, supported)
}

// ResourcesVersions are the api-versions of Microsoft.Resources that berth
// accepts (subscriptions, resource groups, operation results).
var ResourcesVersions = &Versions{List: []string{
	"2014-04-01", "2015-01-01", "2015-11-01", "2016-02-01", "2016-06-01", "2016-07-01", "2016-09-01",
	"2017-05-10", "2017-08-01", "2018-02-01", "2018-05-01", "2018-06-01", "2019-03-01", "2019-05-01",
	"2019-05-10", "2019-06-01", "2019-07-01", "2019-08-01", "2019-10-01", "2019-11-01", "2020-01-01",
	"2020-06-01", "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-01-01", "2022-09-01",
	"2022-12-01", "2023-07-01", "2024-03-01", "2024-07-01", "2024-08-01", "2024-11-01", "2025-01-01",
	"2025-03-01", "2025-04-01",
}}
