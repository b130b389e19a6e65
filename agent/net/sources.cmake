# agent/net: HttpClient, the libcurl implementation, failure classification, retry.
target_sources(pha_agent PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/curl_client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/http.cpp
  ${CMAKE_CURRENT_LIST_DIR}/retry.cpp)
# OpenSSL::SSL for the certificate pin checked inside libcurl's handshake.
target_link_libraries(pha_agent PRIVATE CURL::libcurl OpenSSL::SSL)
