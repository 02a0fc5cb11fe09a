package aws

import "encoding/xml"

// The answer bodies, with EC2's element names (lowerCamel, lists as xxxSet/item), as
// the EC2 API reference shows them and the SDK's awsEc2query deserializers read them.

type errorResponse struct {
	XMLName   xml.Name    `xml:"Response"`
	Errors    []errorItem `xml:"Errors>Error"`
	RequestID string      `xml:"RequestID"`
}

type errorItem struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type allocateResponse struct {
	XMLName            xml.Name `xml:"AllocateAddressResponse"`
	Xmlns              string   `xml:"xmlns,attr"`
	RequestID          string   `xml:"requestId"`
	PublicIP           string   `xml:"publicIp"`
	Domain             string   `xml:"domain"`
	AllocationID       string   `xml:"allocationId"`
	PublicIPv4Pool     string   `xml:"publicIpv4Pool,omitempty"`
	NetworkBorderGroup string   `xml:"networkBorderGroup,omitempty"`
}

type associateResponse struct {
	XMLName       xml.Name `xml:"AssociateAddressResponse"`
	Xmlns         string   `xml:"xmlns,attr"`
	RequestID     string   `xml:"requestId"`
	AssociationID string   `xml:"associationId"`
}

// returnResponse is the <return>true</return> answer of DisassociateAddress and
// ReleaseAddress; XMLName names the action's response element.
type returnResponse struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

type describeAddressesResponse struct {
	XMLName   xml.Name      `xml:"DescribeAddressesResponse"`
	Xmlns     string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Addresses []addressItem `xml:"addressesSet>item"`
}

type addressItem struct {
	PublicIP           string    `xml:"publicIp"`
	AllocationID       string    `xml:"allocationId"`
	Domain             string    `xml:"domain"`
	AssociationID      string    `xml:"associationId,omitempty"`
	NetworkInterfaceID string    `xml:"networkInterfaceId,omitempty"`
	PrivateIPAddress   string    `xml:"privateIpAddress,omitempty"`
	PublicIPv4Pool     string    `xml:"publicIpv4Pool,omitempty"`
	NetworkBorderGroup string    `xml:"networkBorderGroup,omitempty"`
	Tags               []tagItem `xml:"tagSet>item,omitempty"`
}

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type describeNetworkInterfacesResponse struct {
	XMLName    xml.Name               `xml:"DescribeNetworkInterfacesResponse"`
	Xmlns      string                 `xml:"xmlns,attr"`
	RequestID  string                 `xml:"requestId"`
	Interfaces []networkInterfaceItem `xml:"networkInterfaceSet>item"`
}

type networkInterfaceItem struct {
	ID            string          `xml:"networkInterfaceId"`
	Status        string          `xml:"status"`
	InterfaceType string          `xml:"interfaceType"`
	PrivateIPs    []privateIPItem `xml:"privateIpAddressesSet>item"`
}

type privateIPItem struct {
	Address string `xml:"privateIpAddress"`
	Primary bool   `xml:"primary"`
}
