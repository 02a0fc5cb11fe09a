// Package agent is the node agent: it serves IPAM requests for the pods of one node and
// turns them into writes of SpiderIPPool status and SpiderEndpoint objects, using the
// pure decisions of package ipam.
package agent
