// Runs work inside another network namespace without moving the caller:
// netfilter links attach in the netns of the calling thread, so the work
// runs on a short-lived thread that enters the namespace first.
#pragma once
#include <functional>
#include <string>

namespace pathtrace {

// Runs fn in the network namespace at netns_path ("" = the caller's own).
// Returns fn's result, or -errno (and sets *error) when the namespace cannot be entered.
int run_in_netns(const std::string &netns_path, const std::function<int()> &fn, std::string *error);

}  // namespace pathtrace
