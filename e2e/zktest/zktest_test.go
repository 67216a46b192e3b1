package zktest

import "testing"

// The expectations follow the documentation of java.net.URLEncoder, not this code: "a" through
// "z", "A" through "Z", "0" through "9" and ".", "-", "*", "_" remain the same; the space becomes
// "+"; every other character is converted to its bytes in the encoding (UTF-8 here), each byte
// then written as "%xy" with two upper-case hexadecimal digits. (Cross-checked against
// URLEncoder.encode(s, "UTF-8") of OpenJDK 17.)
func TestJavaURLEncode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"abcxyzABCXYZ0189", "abcxyzABCXYZ0189"},
		{".-*_", ".-*_"},
		{"a b  c", "a+b++c"},
		// The example in URLEncoder's Javadoc.
		{"The string ü@foo-bar", "The+string+%C3%BC%40foo-bar"},
		// Unlike url.QueryEscape: '~' is encoded, '*' is not.
		{"~*", "%7E*"},
		{"+%", "%2B%25"},
		{"\t\n", "%09%0A"},
		{"€", "%E2%82%AC"},
		{"a=1&b=2,3;c", "a%3D1%26b%3D2%2C3%3Bc"},
		{"dubbo://10.0.0.1:20880/com.foo.Bar?interface=com.foo.Bar&methods=a,b",
			"dubbo%3A%2F%2F10.0.0.1%3A20880%2Fcom.foo.Bar%3Finterface%3Dcom.foo.Bar%26methods%3Da%2Cb"},
	} {
		if got := JavaURLEncode(tc.in); got != tc.want {
			t.Errorf("JavaURLEncode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProviderPath(t *testing.T) {
	got := ProviderPath("/dubbo", "com.foo.Bar", "dubbo://10.0.0.1:20880/com.foo.Bar?side=provider")
	want := "/dubbo/com.foo.Bar/providers/dubbo%3A%2F%2F10.0.0.1%3A20880%2Fcom.foo.Bar%3Fside%3Dprovider"
	if got != want {
		t.Errorf("ProviderPath = %q, want %q", got, want)
	}
}
