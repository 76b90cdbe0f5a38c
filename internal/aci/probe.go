package aci

import (
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// runtimeProbe maps a container's liveness or readiness probe to the
// runtime's (which applies ACI's default timings to what is not given).
func runtimeProbe(p *Probe) *runtime.Probe {
	if p == nil {
		return nil
	}
	val := func(v *int) int {
		if v == nil {
			return 0
		}
		return *v
	}
	rp := &runtime.Probe{
		Exec:                append([]string(nil), p.Exec...),
		InitialDelaySeconds: val(p.InitialDelaySeconds),
		PeriodSeconds:       val(p.PeriodSeconds),
		FailureThreshold:    val(p.FailureThreshold),
		SuccessThreshold:    val(p.SuccessThreshold),
		TimeoutSeconds:      val(p.TimeoutSeconds),
	}
	if h := p.HTTPGet; h != nil {
		rp.HTTPGet = &runtime.HTTPGetProbe{Path: h.Path, Port: h.Port, Scheme: strings.ToLower(h.Scheme)}
		for _, hd := range h.Headers {
			if hd.Name == "" {
				continue
			}
			if rp.HTTPGet.Headers == nil {
				rp.HTTPGet.Headers = map[string]string{}
			}
			rp.HTTPGet.Headers[hd.Name] = hd.Value
		}
	}
	return rp
}
