# agent/http: the agent's own HTTP server (on Boost.Beast and Boost.Asio), its API and the status page.
find_package(Boost 1.74 REQUIRED CONFIG)
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/api.cpp
  ${CMAKE_CURRENT_LIST_DIR}/server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/wire.cpp)
# PUBLIC: wire.hpp (the framing the unit tests and the fuzz target drive) includes Beast.
target_link_libraries(pha_agent PUBLIC Boost::headers PRIVATE OpenSSL::SSL)
