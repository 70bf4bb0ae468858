"""ROS 2 adapters: one thin node per file, translating messages, parameters and
lifecycle transitions into calls on the ROS-free core."""
