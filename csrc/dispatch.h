// CPU feature detection and the choice of kernel table, made once at start-up
// (SEQCORE_ISA=scalar|avx2|avx512|avx512_bf16|amx_bf16 forces one) and changeable for tests.
#pragma once
#include <string>
#include <vector>

#include "kernels.h"

namespace seqcore {

// Names of the instruction sets this CPU can run, slowest first.
std::vector<std::string> supported_isas();

// The table in use. The first call chooses it: SEQCORE_ISA when set, else
// the best the CPU supports. Throws std::invalid_argument for an unknown or
// unsupported SEQCORE_ISA.
const IsaKernels& active_kernels();

// Switches to the named ISA; throws std::invalid_argument if unknown or not
// supported by this CPU.
void set_isa(const std::string& name);

}  // namespace seqcore
