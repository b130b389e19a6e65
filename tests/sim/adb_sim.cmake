# The AccountDB simulator (included from tests/sim/CMakeLists.txt). The wire
# server comes from the Proxmox simulator's library.

# The AccountDB simulator as a library: integration tests run it in-process.
set(_adb ${CMAKE_CURRENT_LIST_DIR})
add_library(pha_adb_sim STATIC
  ${_adb}/adb_control.cpp
  ${_adb}/adb_fault.cpp
  ${_adb}/adb_json.cpp
  ${_adb}/adb_protocol.cpp
  ${_adb}/adb_rate_limit.cpp
  ${_adb}/adb_reply.cpp
  ${_adb}/adb_sim.cpp
  ${_adb}/adb_store.cpp
  ${_adb}/adb_validation.cpp
)
target_include_directories(pha_adb_sim PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(pha_adb_sim
  PUBLIC pha_pve_sim nlohmann_json::nlohmann_json Threads::Threads pha_warnings pha_sanitizers
  PRIVATE PkgConfig::HTTPLIB)

# adb-sim: the simulator as a program, with a control API.
add_executable(adb-sim ${CMAKE_CURRENT_LIST_DIR}/adb_sim_main.cpp)
target_link_libraries(adb-sim PRIVATE pha_adb_sim CLI11::CLI11 pha_warnings pha_sanitizers)

# The simulator's own tests, over real loopback HTTP with libcurl, including
# a replay of the recording of the real server.
add_executable(adb_sim_tests ${CMAKE_CURRENT_LIST_DIR}/adb_sim_test.cpp)
target_link_libraries(adb_sim_tests PRIVATE pha_adb_sim pha_test_support CURL::libcurl
                                            pha_warnings pha_sanitizers)
target_compile_definitions(adb_sim_tests PRIVATE
  PHA_ADB_SIM_BINARY="$<TARGET_FILE:adb-sim>"
  PHA_FIXTURES_DIR="${CMAKE_SOURCE_DIR}/tests/fixtures")
add_dependencies(adb_sim_tests adb-sim)
doctest_discover_tests(adb_sim_tests TEST_PREFIX "adb-sim: "
  PROPERTIES FAIL_REGULAR_EXPRESSION "test cases: +0 \\|")
