package productsvc

import (
	"slices"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// field is one mutable field of a resource In in an update request, U the
// update it is applied to: a row of the resource's table of fields.
type field[In, U any] struct {
	// path is the field's update-mask path.
	path string
	// name names the field in errors ("product.sku").
	name string
	// populated reports whether in sets the field; an empty update mask
	// updates the populated fields (AIP-134).
	populated func(in In) bool
	// set checks in's value of the field, refusing it with an Invalid
	// error on name, and applies it to u (which is dropped on error).
	set func(name string, in In, u U) error
}

// applyUpdate checks and applies to u the fields of in that mask names, in
// the order of fields; an empty mask means every populated field
// (AIP-134). Unknown paths, output-only paths and an update of nothing are
// refused with an Invalid error on update_mask.
func applyUpdate[In, U any](mask *fieldmaskpb.FieldMask, fields []field[In, U], outputOnly []string, in In, u U) error {
	var update uint64 // bit i: fields[i]
	for _, p := range mask.GetPaths() {
		i := slices.IndexFunc(fields, func(f field[In, U]) bool { return f.path == p })
		switch {
		case i >= 0:
			update |= 1 << i
		case slices.Contains(outputOnly, p):
			return shoperr.Invalid("update_mask", "%q is output only and cannot be updated", p)
		default:
			return shoperr.Invalid("update_mask", "unknown field %q; mutable fields are %v", p, paths(fields))
		}
	}
	if len(mask.GetPaths()) == 0 {
		for i, f := range fields {
			if f.populated(in) {
				update |= 1 << i
			}
		}
	}
	if update == 0 {
		return shoperr.Invalid("update_mask", "names no field to update; mutable fields are %v", paths(fields))
	}
	for i, f := range fields {
		if update&(1<<i) != 0 {
			if err := f.set(f.name, in, u); err != nil {
				return err
			}
		}
	}
	return nil
}

// paths returns the update-mask paths of fields, in order.
func paths[In, U any](fields []field[In, U]) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.path
	}
	return out
}
