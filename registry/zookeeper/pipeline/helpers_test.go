package pipeline_test

import (
	"fmt"
	"time"
)

// liveURL is the provider URL a Dubbo 2 provider of com.example.Live on ip:port registers.
func liveURL(ip string, port int) string {
	return fmt.Sprintf("dubbo://%s:%d/com.example.Live?application=live-provider&interface=com.example.Live&methods=hello&side=provider&timestamp=%d", ip, port, time.Now().UnixMilli())
}
