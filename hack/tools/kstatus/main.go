// Command kstatus prints the status that sigs.k8s.io/cli-utils' kstatus computes for Kubernetes
// objects: the rules Flux, Helm 4's --wait and kpt use to decide whether an applied object is
// Current, InProgress, Failed or Terminating.
//
// Input on stdin: one JSON object, or a list (`kubectl get -o json` of several objects), whose
// items are read one by one. Output on stdout: one JSON line per object,
// {"apiVersion","kind","namespace","name","status","message"}, in input order. Exit 1 when the
// input is not JSON or kstatus returns an error for an object.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var top unstructured.Unstructured
	if err := top.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("parsing stdin: %w", err)
	}
	var objects []unstructured.Unstructured
	if top.IsList() {
		list, err := top.ToList()
		if err != nil {
			return fmt.Errorf("reading the list: %w", err)
		}
		objects = list.Items
	} else {
		objects = []unstructured.Unstructured{top}
	}
	enc := json.NewEncoder(out)
	for i := range objects {
		u := &objects[i]
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if err := enc.Encode(result{
			APIVersion: u.GetAPIVersion(),
			Kind:       u.GetKind(),
			Namespace:  u.GetNamespace(),
			Name:       u.GetName(),
			Status:     res.Status.String(),
			Message:    res.Message,
		}); err != nil {
			return fmt.Errorf("writing the result: %w", err)
		}
	}
	return nil
}
