package productsvc

import (
	"slices"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/decoupledshop/shop/internal/shoperr"
)

// updatePaths returns the set of fields an update changes. An empty mask
// means every populated mutable field (AIP-134). Unknown paths and
// output-only paths are refused with an Invalid error on update_mask.
func updatePaths(mask *fieldmaskpb.FieldMask, mutable, outputOnly, populated []string) (map[string]bool, error) {
	paths := mask.GetPaths()
	if len(paths) == 0 {
		paths = populated
	}
	if len(paths) == 0 {
		return nil, shoperr.Invalid("update_mask", "names no field to update; mutable fields are %v", mutable)
	}
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		switch {
		case slices.Contains(mutable, p):
			set[p] = true
		case slices.Contains(outputOnly, p):
			return nil, shoperr.Invalid("update_mask", "%q is output only and cannot be updated", p)
		default:
			return nil, shoperr.Invalid("update_mask", "unknown field %q; mutable fields are %v", p, mutable)
		}
	}
	return set, nil
}
