"""ROS 2 messages without middleware: conversion to and from numpy, IDL structs, CDR, names.

    ROS message --(messages)--> numpy arrays ... action --(messages)--> command message

* :mod:`hpt_ros.msgs.messages` converts, written once against ROS 2 field names (serves
  rclpy messages, rosbags dataclasses and the DDS IDL structs alike);
* :mod:`hpt_ros.msgs.idl` holds ROS 2's message types as IDL structs with a numpy CDR
  codec (:mod:`hpt_ros.msgs.idl.cdr`, bytes identical to ROS 2's);
* :mod:`hpt_ros.msgs.names` holds ROS 2's type, topic and node name rules;
* :mod:`hpt_ros.msgs.errors` the errors that name the topic, type or name at fault.

Bags and datasets (:mod:`hpt_ros.data`) and the transports (:mod:`hpt_ros.ros`) both build
on this package; it imports neither of them, nor any DDS entity or rclpy. Importing it
loads nothing; :mod:`hpt_ros.msgs.idl` imports ``cyclonedds.idl`` for the struct types.
"""
