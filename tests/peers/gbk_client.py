"""The tutorial's client: send a GBK greeting, print the GBK reply, close.

Usage: gbk_client.py PORT
Prints "HEX:<reply bytes in hex>" and "REPLY:<reply decoded as GBK>" (strict: bytes that are
not GBK make it fail).
"""
import socket
import sys

port = int(sys.argv[1])
tcp_client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_client_socket.settimeout(20)
tcp_client_socket.connect(("127.0.0.1", port))
tcp_client_socket.send("你好服务端,我是客户端小黑!".encode("gbk"))
recv_data = tcp_client_socket.recv(1024)
sys.stdout.write("HEX:" + recv_data.hex() + "\n")
sys.stdout.flush()
sys.stdout.buffer.write(("REPLY:" + recv_data.decode("gbk") + "\n").encode("utf-8"))
sys.stdout.flush()
tcp_client_socket.close()
