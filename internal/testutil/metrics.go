package testutil

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ParseMetrics parses data with the Prometheus text parser, with the
// classic metric names node_exporter's collector needs, and checks what
// every family of the file must have: a HELP line, a TYPE of counter (the
// name ends in _total) or gauge (it does not), and the nfqknockd_ prefix.
// It returns the samples by "name{label="value",...}".
func ParseMetrics(t testing.TB, data []byte) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, data)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		if !strings.HasPrefix(name, "nfqknockd_") {
			t.Errorf("%s: no nfqknockd_ prefix", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s: name does not end in _total", name)
			}
		case dto.MetricType_GAUGE:
			if strings.HasSuffix(name, "_total") {
				t.Errorf("gauge %s: name ends in _total", name)
			}
		default:
			t.Errorf("%s: type %v, want counter or gauge", name, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetCounter().GetValue()
			if mf.GetType() == dto.MetricType_GAUGE {
				v = m.GetGauge().GetValue()
			}
			out[key] = v
		}
	}
	return out
}
