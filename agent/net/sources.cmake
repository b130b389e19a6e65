# agent/net: HttpClient, the libcurl implementation, failure classification, retry.
target_sources(pha_agent PRIVATE)
