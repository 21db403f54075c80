from lvscare.cli import main

main()
