#include "in_netns.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <thread>
#include <unistd.h>

namespace pathtrace {

int run_in_netns(const std::string &netns_path, const std::function<int()> &fn, std::string *error) {
  if (netns_path.empty()) return fn();

  int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    *error = "cannot open network namespace " + netns_path + ": " + strerror(err);
    return -err;
  }
  int result = 0;
  std::thread worker([&] {
    if (setns(fd, CLONE_NEWNET) != 0) {
      int err = errno;
      *error = netns_path + " is not a network namespace we can enter: " + strerror(err);
      result = -err;
      return;
    }
    result = fn();
  });
  worker.join();
  close(fd);
  return result;
}

}  // namespace pathtrace
