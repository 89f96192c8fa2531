# `node-gyp rebuild` (npm run build:gyp) builds the addon by running the one native build, CMakeLists.txt,
# through cmake-js as `npm run build:native` does, then copies what it made to where that build leaves it:
# the addon and the libraries it carries in build/Release, the load generator and the tests' NFQUEUE listener
# in build/. The sources are listed in CMakeLists.txt alone: the BPF objects (vmlinux.h, clang twice,
# skeletons), the carried libbpf and libelf found by RUNPATH $ORIGIN and the two programs have no gyp
# equivalent, so a gyp target compiling native/*.cc itself would be a second build to keep equal. Always
# Release, in build/Release, where src/trace/native.ts loads it (--debug changes nothing).
# Not in the package (package.json's files), and "gypfile": false there keeps npm from running it on
# `npm ci`: the package ships the addon built and never compiles on a server.
{
  "targets": [
    {
      "target_name": "pathtrace",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_compile",
          # When `node-gyp build` runs it again: any file the CMake build reads changed (a new source comes
          # with an edit of CMakeLists.txt or of a file that includes it); CMake then rebuilds what is stale.
          "inputs": ["<!@(find CMakeLists.txt native bpf bench/loadgen.c test/helpers/nfq-listener.c -type f)"],
          "outputs": [
            "<(module_root_dir)/build/Release/pathtrace.node",
            "<(module_root_dir)/build/Release/libbpf.so.1",
            "<(module_root_dir)/build/Release/libelf.so.1",
            "<(module_root_dir)/build/pathtrace-loadgen",
            "<(module_root_dir)/build/pathtrace-nfq"
          ],
          # CMake works in build/cmake: build/Makefile is node-gyp's, and make is reading it meanwhile.
          "action": [
            "sh", "-c",
            "node node_modules/cmake-js/bin/cmake-js compile --log-level warn --out build/cmake && cd build && cp cmake/Release/pathtrace.node cmake/Release/libbpf.so.1 cmake/Release/libelf.so.1 Release/ && cp cmake/pathtrace-loadgen cmake/pathtrace-nfq ."
          ]
        }
      ]
    }
  ]
}
