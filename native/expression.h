// The user's tcpdump expression, compiled by the system's libpcap as tcpdump compiles it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "record.h"

namespace pathtrace {

// Compiles text for raw IP with libpcap, loaded from the first of libraries that opens (so that the
// addon runs where libpcap is absent, until an expression is given). Throws std::runtime_error with
// libpcap's message, or one naming the libraries tried.
std::vector<pathtrace_expr_insn> compile_expression(const std::string &text, const std::vector<std::string> &libraries);

}  // namespace pathtrace
