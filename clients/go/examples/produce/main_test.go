package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"
)

// TestWorkedExampleAgainstTheStack runs the example against the real stack when tests/clients.rs
// asks for it (BUCKET_E2E=1); with a read API, each receipt must say what the example expects.
func TestWorkedExampleAgainstTheStack(t *testing.T) {
	if os.Getenv("BUCKET_E2E") != "1" {
		t.Skip("needs the stack (tests/clients.rs)")
	}
	lines, err := run(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(os.Getenv("BUCKET_E2E_OUT"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		b, _ := json.Marshal(l)
		if _, err := f.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	if os.Getenv("BUCKET_API_URL") == "" {
		return
	}
	for _, l := range lines {
		if l.Outcome != l.ExpectOutcome || !slices.Equal(l.Reasons, l.ExpectReasons) {
			t.Fatalf("%s: got %s %v, want %s %v", l.Case, l.Outcome, l.Reasons, l.ExpectOutcome, l.ExpectReasons)
		}
	}
	if v := lines[0].Version; v == nil || *v != 1 {
		t.Fatalf("first version %v", v)
	}
}
