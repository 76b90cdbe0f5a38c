package server

// cloudMetadata is ARM's /metadata/endpoints document for berth's cloud: the
// 2022-09-01 shape plus the 2015-01-01 fields older az versions read.
func cloudMetadata(base, registry string) map[string]any {
	return map[string]any{
		"name":            "berth",
		"resourceManager": base + "/",
		"portal":          base + "/",
		"gallery":         base + "/",
		"graph":           base + "/",
		"graphAudience":   base + "/",
		"authentication": map[string]any{
			"loginEndpoint":    base + "/",
			"audiences":        []string{"https://management.core.windows.net/", "https://management.azure.com/"},
			"tenant":           "common",
			"identityProvider": "AAD",
		},
		"suffixes": map[string]any{
			"acrLoginServer": registry,
			"storage":        "core.windows.net",
			"keyVaultDns":    "vault.azure.net",
		},
		// 2015-01-01 fields.
		"galleryEndpoint": base + "/",
		"graphEndpoint":   base + "/",
		"portalEndpoint":  base + "/",
	}
}
