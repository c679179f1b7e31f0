// Command promql-metrics lists the metric names PromQL expressions select, with Prometheus' own
// parser (github.com/prometheus/prometheus/promql/parser, the version promtool is built from).
//
// Input on stdin: a JSON array of expressions. Output on stdout: a JSON array of the same length
// whose element i holds the sorted, distinct metric names expression i selects. Exit 1 when an
// expression does not parse, or selects series without naming the metric (a {__name__=~"..."}
// matcher, or no name at all): such a selector cannot be checked against what a process exports.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "promql-metrics: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var exprs []string
	if err := json.NewDecoder(in).Decode(&exprs); err != nil {
		return fmt.Errorf("stdin must be a JSON array of strings: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	result := make([][]string, len(exprs))
	for i, text := range exprs {
		expr, err := p.ParseExpr(text)
		if err != nil {
			return fmt.Errorf("expression %d (%q): %w", i, text, err)
		}
		names := map[string]struct{}{}
		var problem error
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok || problem != nil {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				problem = fmt.Errorf("expression %d (%q): selector %s names no metric", i, text, vs.String())
				return nil
			}
			names[name] = struct{}{}
			return nil
		})
		if problem != nil {
			return problem
		}
		result[i] = make([]string, 0, len(names))
		for n := range names {
			result[i] = append(result[i], n)
		}
		sort.Strings(result[i])
	}
	return json.NewEncoder(out).Encode(result)
}
